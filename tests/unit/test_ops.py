"""Ops endpoints (/health, /ready, /metrics), shared metrics, and the common HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, Request
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from lastline_shared.metrics import ServiceMetrics
from lastline_shared.ops import ProblemError, ReadinessCheck, create_http_app, ops_router
from lastline_shared.settings import DEV_JWT_SECRET, SERVICE_SETTINGS, IntakeSettings

SECRET = "ops-test-secret-long-enough-for-hs256!"
settings = IntakeSettings(auth_jwt_secret=SECRET)


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


def echo_router() -> APIRouter:
    router = APIRouter()

    @router.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @router.get("/teapot")
    async def teapot() -> None:
        raise ProblemError(418, "I'm a teapot", "short and stout")

    @router.get("/count")
    async def count(n: Annotated[int, Query(ge=0)]) -> dict[str, int]:
        return {"n": n}

    @router.post("/refuse")
    async def refuse() -> None:
        raise ProblemError(401, "Unauthorized", "no key")  # answers without reading the body

    return router


# --- /health and /ready --------------------------------------------------------------------------


async def passes() -> None:
    return None


async def says_no() -> bool:
    return False


async def raises() -> None:
    raise ConnectionRefusedError("cannot reach db for maria.lopez@example.org")


async def hangs() -> None:
    await asyncio.sleep(10)


def ops_app(checks: dict[str, ReadinessCheck]) -> FastAPI:
    app = FastAPI()
    app.include_router(ops_router(checks, check_timeout_s=0.05))
    return app


async def test_health_answers_without_running_checks() -> None:
    async with client_for(ops_app({"db": raises})) as c:
        response = await c.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_every_check_passes() -> None:
    async with client_for(ops_app({"db": passes, "relay": passes})) as c:
        response = await c.get("/ready")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "checks": {"db": "ok", "relay": "ok"},
        "failed": [],
    }


async def test_not_ready_names_the_failed_checks() -> None:
    checks: dict[str, ReadinessCheck] = {
        "db": raises,
        "consumer": says_no,
        "kafka": hangs,
        "relay": passes,
    }
    async with client_for(ops_app(checks)) as c:
        response = await c.get("/ready")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert sorted(body["failed"]) == ["consumer", "db", "kafka"]
    assert body["checks"]["relay"] == "ok"
    assert body["checks"]["consumer"] == "returned false"
    assert body["checks"]["kafka"] == "no answer within 0.05s"
    assert body["checks"]["db"].startswith("ConnectionRefusedError: cannot reach db for")
    assert "maria.lopez" not in response.text  # error text is redacted like a log line


async def test_checks_are_read_at_request_time() -> None:
    checks: dict[str, ReadinessCheck] = {}
    async with client_for(ops_app(checks)) as c:
        before = await c.get("/ready")
        checks["consumer"] = says_no
        after = await c.get("/ready")

    assert before.status_code == 200
    assert after.status_code == 503


async def test_checks_run_concurrently() -> None:
    async def slow() -> None:
        await asyncio.sleep(0.03)

    app = FastAPI()
    app.include_router(ops_router({f"c{i}": slow for i in range(5)}, check_timeout_s=1))
    loop = asyncio.get_running_loop()
    async with client_for(app) as c:
        started = loop.time()
        response = await c.get("/ready")
        elapsed = loop.time() - started

    assert response.status_code == 200
    assert elapsed < 0.12  # five 30 ms checks, not 150 ms in sequence


# --- metrics -------------------------------------------------------------------------------------


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_metrics_exposes_the_shared_metrics() -> None:
    metrics = ServiceMetrics("ops-test")
    consumed = {"service": "ops-test", "topic": "cases", "type": "case-opened"}
    before = sample("lastline_events_consumed_total", **consumed, outcome="processed")

    metrics.event_consumed("cases", "case-opened", "processed")
    metrics.event_published("matches", "match-proposed", count=3)
    metrics.observe_handler("cases", "case-opened", 0.004)
    with metrics.time_handler("cases", "case-updated"):
        pass
    metrics.set_outbox_backlog(17)
    metrics.set_consumer_lag("cases", 4, 250)
    metrics.observe_relay_publish(0.02)

    async with client_for(create_http_app(settings)) as c:
        response = await c.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert sample("lastline_events_consumed_total", **consumed, outcome="processed") == before + 1
    assert (
        sample(
            "lastline_events_published_total",
            service="ops-test",
            topic="matches",
            type="match-proposed",
        )
        >= 3
    )
    assert sample("lastline_outbox_backlog", service="ops-test") == 17
    assert sample("lastline_consumer_lag", service="ops-test", topic="cases", partition="4") == 250
    assert sample("lastline_handler_duration_seconds_count", **consumed) >= 1
    assert (
        sample(
            "lastline_handler_duration_seconds_count",
            service="ops-test",
            topic="cases",
            type="case-updated",
        )
        >= 1
    )
    assert sample("lastline_relay_publish_duration_seconds_count", service="ops-test") >= 1
    assert 'lastline_outbox_backlog{service="ops-test"} 17.0' in text
    assert "lastline_dlq_events_total" in text
    assert "process_cpu_seconds_total" in text  # the default registry's collectors


def test_dead_lettered_events_are_counted_twice_over() -> None:
    metrics = ServiceMetrics("ops-test-dlq")
    before = sample("lastline_dlq_events_total", service="ops-test-dlq", topic="cases")

    metrics.event_consumed("cases", "case-opened", "dlq")
    metrics.event_consumed("cases", "case-opened", "invalid")

    assert sample("lastline_dlq_events_total", service="ops-test-dlq", topic="cases") == before + 1
    assert (
        sample(
            "lastline_events_consumed_total",
            service="ops-test-dlq",
            topic="cases",
            type="case-opened",
            outcome="dlq",
        )
        == 1
    )


async def test_metrics_speaks_openmetrics_when_asked() -> None:
    async with client_for(create_http_app(settings)) as c:
        response = await c.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


async def test_several_apps_in_one_process() -> None:
    apps = [create_http_app(cls(auth_jwt_secret=SECRET)) for cls in SERVICE_SETTINGS.values()]
    apps += [create_http_app(cls(auth_jwt_secret=SECRET)) for cls in SERVICE_SETTINGS.values()]

    for app in apps:
        async with client_for(app) as c:
            assert (await c.get("/metrics")).status_code == 200
            assert (await c.get("/health")).status_code == 200
    assert [a.title for a in apps[:4]] == list(SERVICE_SETTINGS)


# --- create_http_app ------------------------------------------------------------------------------


async def test_app_has_service_title_routers_and_ops_endpoints() -> None:
    app = create_http_app(settings, routers=[echo_router()], readiness_checks={"db": says_no})
    async with client_for(app) as c:
        echo = await c.post("/echo", content=b"x" * 10)
        ready = await c.get("/ready")
        openapi = (await c.get("/openapi.json")).json()

    assert app.title == "intake"
    assert app.state.settings is settings
    assert echo.json() == {"bytes": 10}
    assert ready.status_code == 503
    assert {"/echo", "/health", "/ready", "/metrics"} <= set(openapi["paths"])


async def test_problem_errors_render_as_problem_json() -> None:
    async with client_for(create_http_app(settings, routers=[echo_router()])) as c:
        response = await c.get("/teapot")

    assert response.status_code == 418
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "I'm a teapot",
        "status": 418,
        "detail": "short and stout",
    }


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    return body


async def test_body_limit_defaults_to_one_mebibyte() -> None:
    async with client_for(create_http_app(settings, routers=[echo_router()])) as c:
        at_limit = await c.post("/echo", content=b"x" * 1024 * 1024)
        over = await c.post("/echo", content=b"x" * (1024 * 1024 + 1))

    assert at_limit.status_code == 200
    assert assert_problem(over, 413) == {
        "type": "about:blank",
        "title": "Content too large",
        "status": 413,
        "detail": "The body exceeds the limit of 1048576 bytes",
    }


async def test_body_limit_answers_before_the_route_when_the_length_says_so() -> None:
    """Even a route that would answer without reading the body (401 here) or no route at all."""
    app = create_http_app(settings, routers=[echo_router()], max_body_bytes=10)
    async with client_for(app) as c:
        refused = await c.post("/refuse", content=b"x" * 11)
        nowhere = await c.post("/nowhere", content=b"x" * 11)
        small = await c.post("/refuse", content=b"x" * 10)

    assert_problem(refused, 413)
    assert_problem(nowhere, 413)
    assert_problem(small, 401)


async def test_framework_errors_are_problem_json() -> None:
    async with client_for(create_http_app(settings, routers=[echo_router()])) as c:
        unknown = await c.get("/no-such-path")
        wrong_method = await c.delete("/teapot")
        missing = await c.get("/count")
        negative = await c.get("/count", params={"n": "-5"})

    assert assert_problem(unknown, 404) == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "Nothing is served at this path",
    }
    assert assert_problem(wrong_method, 405)["title"] == "Method Not Allowed"
    assert "Allow header" in str(assert_problem(wrong_method, 405)["detail"])
    assert wrong_method.headers["allow"] == "GET"
    body = assert_problem(missing, 422)
    assert body["errors"] == [{"path": "query.n", "code": "missing", "message": "Field required"}]
    errors = assert_problem(negative, 422)["errors"]
    assert isinstance(errors, list)
    assert [(e["path"], e["code"]) for e in errors] == [("query.n", "greater_than_equal")]
    assert "-5" not in negative.text  # the input is never echoed


async def test_body_limit_applies_to_streamed_bodies_without_length() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 1000

    app = create_http_app(settings, routers=[echo_router()], max_body_bytes=5_000)
    async with client_for(app) as c:
        response = await c.post("/echo", content=chunks())

    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


async def test_body_limit_from_settings() -> None:
    small = IntakeSettings(auth_jwt_secret=SECRET, http_max_body_bytes=100)
    async with client_for(create_http_app(small, routers=[echo_router()])) as c:
        assert (await c.post("/echo", content=b"x" * 100)).status_code == 200
        assert (await c.post("/echo", content=b"x" * 101)).status_code == 413


async def test_lifespan_runs_around_the_app() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        events.append("start")
        yield
        events.append("stop")

    app = create_http_app(settings, lifespan=lifespan)
    async with app.router.lifespan_context(app), client_for(app) as c:
        assert events == ["start"]
        assert (await c.get("/health")).status_code == 200
    assert events == ["start", "stop"]


@pytest.mark.parametrize(("secret", "warned"), [(DEV_JWT_SECRET, True), (SECRET, False)])
def test_dev_secret_is_warned_about(secret: str, warned: bool) -> None:
    with capture_logs() as logs:
        create_http_app(IntakeSettings(auth_jwt_secret=secret))

    insecure = [e for e in logs if e["log_level"] == "warning" and "INSECURE" in e["event"]]
    assert bool(insecure) is warned


def test_ops_alone_registers_the_shared_metrics() -> None:
    """A service that has not touched its metrics yet still lists them (at zero) on /metrics."""
    code = (
        "import sys, lastline_shared.ops\n"
        "from prometheus_client import REGISTRY, generate_latest\n"
        "sys.stdout.write(generate_latest(REGISTRY).decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert "# TYPE lastline_events_consumed_total counter" in out.stdout
    assert "# TYPE lastline_consumer_lag gauge" in out.stdout
