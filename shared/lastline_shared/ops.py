"""The HTTP app every service builds: ``/health``, ``/ready``, ``/metrics``, body size limit,
RFC 9457 problem responses.

Every error the app itself answers is problem details (``application/problem+json``): the service's
:class:`ProblemError`, Starlette's and FastAPI's own HTTP errors (unknown path, wrong method), request
validation (422, with each problem as ``errors``) and bodies over the limit (413).

``/health`` says the process answers; ``/ready`` runs the service's readiness checks (database
answers, consumer has its partitions, relay running) concurrently, each with a timeout, and answers
503 naming the checks that failed, so an orchestrator stops sending traffic without restarting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Imported for its side effect: the shared metrics exist in the default registry (and so on
# /metrics, at zero) in every service, even before its consumers and relay first use them.
from lastline_shared import metrics as _shared_metrics  # noqa: F401
from lastline_shared.logging import get_logger, redact_text
from lastline_shared.settings import ServiceSettings

# A readiness check passes unless it raises, times out or returns False.
ReadinessCheck = Callable[[], Awaitable[bool | None]]
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

PROBLEM_MEDIA_TYPE = "application/problem+json"

log = get_logger(__name__)


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """An RFC 9457 problem details response; ``extensions`` are extra members (``errors``)."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    body.update(extensions or {})
    return JSONResponse(body, status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


class ProblemError(HTTPException):
    """An HTTP error rendered as problem details by apps from ``create_http_app``."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, dict(headers) if headers else None)
        self.title = title


async def _problem_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status_code, exc.title, exc.detail, exc.headers)


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


_FRAMEWORK_DETAILS = {
    404: "Nothing is served at this path",
    405: "This path does not take this method; the Allow header lists those it takes",
}


async def _http_error_handler(_request: Request, exc: Exception) -> Response:
    """Starlette's and FastAPI's own errors (404 for an unknown path, 405, a plain HTTPException)."""
    assert isinstance(exc, StarletteHTTPException)
    title = _status_phrase(exc.status_code)
    detail = str(exc.detail)
    if detail == title:  # the framework's default, which says nothing more than the title
        detail = _FRAMEWORK_DETAILS.get(exc.status_code, title)
    return problem_response(exc.status_code, title, detail, exc.headers)


def _error_path(loc: Iterable[int | str]) -> str:
    """``("query", "event_id")`` as ``query.event_id``; ``("body", "items", 1)`` as ``body.items[1]``."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


async def _validation_handler(_request: Request, exc: Exception) -> Response:
    """FastAPI's request validation as a 422 problem listing each problem as {path, code, message},
    the shape intake's rejections use; never the submitted input (it may be personal data)."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"path": _error_path(error.get("loc", ())), "code": str(error["type"]), "message": str(error["msg"])}
        for error in exc.errors()
    ]
    detail = "The request is not valid: see errors"
    return problem_response(422, "Unprocessable request", detail, extensions={"errors": errors})


class _BodyTooLarge(ProblemError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "Content too large", f"The body exceeds the limit of {limit} bytes")


class _BodyLimit:
    """Request bodies over ``limit`` bytes answer 413 as problem details: at once when the
    Content-Length says so (before authentication, so nothing reads the body), else when a streamed
    body runs over while the app reads it (raised from ``receive``, rendered by the problem handler)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._answer(scope, receive, send)
            return
        size = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    raise _BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = _BodyTooLarge(self.limit)
        await problem_response(error.status_code, error.title, error.detail)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _run_check(check: ReadinessCheck, timeout_s: float) -> str | None:
    """None when the check passes, else why it failed (redacted: errors can quote data)."""
    try:
        async with asyncio.timeout(timeout_s):
            result = await check()
    except TimeoutError:
        return f"no answer within {timeout_s:g}s"
    except Exception as exc:  # a failing check is an answer, not a server error
        return redact_text(f"{type(exc).__name__}: {exc}")[:300]
    return "returned false" if result is False else None


def ops_router(
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    *,
    check_timeout_s: float = 2.0,
    registry: CollectorRegistry = REGISTRY,
) -> APIRouter:
    """``/health``, ``/ready`` and ``/metrics``.

    ``readiness_checks`` is read at every request, so a service may pass a dict and add checks
    once its lifespan has started the things they look at.
    """
    checks: Mapping[str, ReadinessCheck] = readiness_checks if readiness_checks is not None else {}
    router = APIRouter(tags=["ops"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", responses={503: {"description": "A readiness check failed"}})
    async def ready() -> JSONResponse:
        names = list(checks)
        failures = await asyncio.gather(*(_run_check(checks[n], check_timeout_s) for n in names))
        results = {n: failure or "ok" for n, failure in zip(names, failures, strict=True)}
        failed = [n for n, failure in zip(names, failures, strict=True) if failure is not None]
        if failed:
            log.warning("not ready", failed={n: results[n] for n in failed})
        return JSONResponse(
            {"status": "unavailable" if failed else "ready", "checks": results, "failed": failed},
            status_code=503 if failed else 200,
        )

    @router.get("/metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(registry), media_type=content_type)

    return router


def create_http_app(
    settings: ServiceSettings,
    *,
    lifespan: Lifespan | None = None,
    routers: Iterable[APIRouter] = (),
    readiness_checks: Mapping[str, ReadinessCheck] | None = None,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """A service's FastAPI app: its routers plus the ops endpoints, request bodies limited to
    ``max_body_bytes`` (default ``settings.http_max_body_bytes``, 1 MiB; larger answers 413).

    ``app.state.settings`` holds ``settings``; the auth dependency reads it from there.
    """
    if settings.uses_dev_jwt_secret:
        log.warning(
            "INSECURE: auth_jwt_secret is the public development default; anyone can sign staff "
            "tokens and volunteer links. Set AUTH_JWT_SECRET (32+ random bytes) outside dev.",
            service=settings.service_name,
        )
    app = FastAPI(title=settings.service_name, lifespan=lifespan)
    app.state.settings = settings
    limit = settings.http_max_body_bytes if max_body_bytes is None else max_body_bytes
    app.add_middleware(_BodyLimit, limit=limit)
    app.add_exception_handler(ProblemError, _problem_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    for router in routers:
        app.include_router(router)
    app.include_router(ops_router(readiness_checks))
    return app
