"""The HTTP app every service builds: ``/health``, ``/ready``, ``/metrics``, body size limit,
RFC 9457 problem responses.

``/health`` says the process answers; ``/ready`` runs the service's readiness checks (database
answers, consumer has its partitions, relay running) concurrently, each with a timeout, and answers
503 naming the checks that failed, so an orchestrator stops sending traffic without restarting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

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
    status: int, title: str, detail: str | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
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
    app = FastAPI(
        title=settings.service_name,
        lifespan=lifespan,
        max_body_size=settings.http_max_body_bytes if max_body_bytes is None else max_body_bytes,
    )
    app.state.settings = settings
    app.add_exception_handler(ProblemError, _problem_handler)
    for router in routers:
        app.include_router(router)
    app.include_router(ops_router(readiness_checks))
    return app
