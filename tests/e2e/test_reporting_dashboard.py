"""The dashboard in headless Chromium (Debian's, driven by Playwright): the figures it shows, a live
update as an event is projected, markup in a facility's name shown as text, a phone-sized screen,
and the staff view behind a sign-in."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import text

from lastline_reporting.app import build
from lastline_reporting.history import PARTNERS, START, generate, publish, rejections_topic
from lastline_reporting.labels import Labels, Place
from lastline_reporting.models import Filters, View
from lastline_reporting.registry import BY_NAME, Reporting
from lastline_shared.auth import issue_staff_token
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import CaseType
from lastline_shared.contracts.envelope import encode
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.settings import ReportingSettings
from tests.e2e.conftest import free_port
from tests.integration.test_reporting_rebuild import test_topics
from tests.support.kafka import create_topics

pytestmark = pytest.mark.e2e

playwright_api = pytest.importorskip("playwright.async_api")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MARKUP = '<img src=x onerror="window.__pwned=1">Stewart <script>window.__pwned=2</script>'


@dataclass
class Served:
    url: str
    runtime: ServiceRuntime
    settings: ReportingSettings
    reporting: Reporting
    topics_prefix: str
    cases_topic: str


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(infra) -> AsyncIterator[Served]:  # type: ignore[no-untyped-def]
    prefix = f"t-dash-{uuid.uuid4().hex[:8]}-"
    topics = test_topics(prefix)
    await create_topics(
        infra.kafka_bootstrap, [*topics.facts, *(rejections_topic(topics, p) for p in PARTNERS)]
    )
    schema = f"t_dashboard_{uuid.uuid4().hex[:8]}"
    settings = ReportingSettings(
        service_name=f"reporting-{uuid.uuid4().hex[:6]}",
        db_schema=schema,
        database_url=infra.database_url,
        kafka_bootstrap_servers=infra.kafka_bootstrap,
        consumer_max_records=200,
    )
    labels = Labels(
        facilities={"STWRTGA": Place(MARKUP, "Lumpkin", "GA"), "KRO": Place("Krome", "Miami", "FL")}
    )
    runtime = build(settings, topics=topics, labels=labels)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            runtime.http_app(), host="127.0.0.1", port=port, log_config=None, timeout_graceful_shutdown=2
        )
    )
    task = asyncio.create_task(server.serve())
    records = list(generate(cases=120, volunteers=30, seed=5).records(topics))
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.1)
        await publish(infra.kafka_bootstrap, records)
        reporting = Reporting(runtime.engine, runtime_generations(runtime), labels)
        await _until(lambda: _referred(reporting), 120)
        yield Served(f"http://127.0.0.1:{port}", runtime, settings, reporting, prefix, topics.facts[1])
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)
        async with runtime.engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await runtime.engine.dispose()


def runtime_generations(runtime: ServiceRuntime):  # type: ignore[no-untyped-def]
    from lastline_reporting.generations import Generations
    from lastline_reporting.tables import ReportingTables
    from lastline_shared.db import new_metadata

    return Generations(ReportingTables(new_metadata()), runtime.settings.db_schema)


async def _referred(reporting: Reporting) -> int:
    response = await reporting.one(BY_NAME["summary"], None, View.PUBLIC, Filters())
    return response.rows[0].referred or 0


async def _until(value, expected: int, timeout_s: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (got := await value()) < expected:
        assert asyncio.get_running_loop().time() < deadline, f"{got} of {expected}"
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_dashboard_shows_figures_updates_live_and_never_runs_markup(served: Served, browser) -> None:  # type: ignore[no-untyped-def]
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{served.url}/dashboard")
    referred = await _referred(served.reporting)
    assert await page.text_content("[data-figure=referred]") == f"{referred:,}"
    await page.wait_for_selector("#live.on")  # the stream is connected

    # A facility's name with markup is shown as that text; nothing in it ran or became an element.
    cell = page.locator("#facilities tbody th .name", has_text="window.__pwned")
    assert await cell.first.text_content() == MARKUP
    assert await page.locator("#facilities img").count() == 0
    assert await page.evaluate("window.__pwned") is None

    # A case opened now reaches the page without a reload.
    case = CaseOpened(
        case_id=uuid.uuid4(),
        facility_code="STWRTGA",
        court_code="LUM",
        case_type=CaseType.ASYLUM,
        languages=("spa",),
        referrals=(PartnerRef(partner_id=PARTNERS[0], external_id="live-1"),),
    )
    record = encode(
        case, source="/services/intake", time=START + timedelta(weeks=9), topic=served.cases_topic
    )
    await publish(served.settings.kafka_bootstrap_servers, [record])
    # (Polled from here: the page's Content-Security-Policy forbids evaluating strings in it.)
    await playwright_api.expect(page.locator("[data-figure=referred]")).to_have_text(
        f"{referred + 1:,}", timeout=30_000
    )
    assert await page.evaluate("window.__pwned") is None
    assert errors == []
    await page.close()


async def test_dashboard_reads_on_a_phone_and_filters(served: Served, browser) -> None:  # type: ignore[no-untyped-def]
    page = await browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    await page.goto(f"{served.url}/dashboard?facility=KRO")
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    expected = await served.reporting.one(BY_NAME["summary"], None, View.PUBLIC, Filters(facility="KRO"))
    shown = await page.text_content("[data-figure=referred]")
    assert shown == (f"{expected.rows[0].referred:,}" if expected.rows[0].referred is not None else "<5")
    assert await page.locator("select[name=facility] option[selected]").get_attribute("value") == "KRO"
    await page.close()


async def test_staff_view_needs_a_token_and_shows_staff_figures(served: Served, browser) -> None:  # type: ignore[no-untyped-def]
    context = await browser.new_context()
    page = await context.new_page()
    response = await page.goto(f"{served.url}/dashboard/staff")
    assert response is not None
    assert response.status == 401
    await page.fill("textarea[name=token]", "not-a-token")
    await page.click("button[type=submit]")
    assert await page.locator(".error").count() == 1
    await page.fill("textarea[name=token]", issue_staff_token(served.settings, "ana@example.org"))
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=Notification delivery")
    assert "Legal calls suspended" in (await page.text_content("#facilities") or "")
    cookie = next(c for c in await context.cookies() if c["name"] == "lastline_staff")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    await context.close()


async def test_a_long_facility_list_shows_its_first_rows_and_sorts_by_column(served: Served, browser) -> None:  # type: ignore[no-untyped-def]
    # Runs last: eight more facilities, a case each (one gets two), make the list longer than 10.
    extra = [f"XTRA{n}" for n in range(8)]
    cases = [
        CaseOpened(
            case_id=uuid.uuid4(),
            facility_code=code,
            court_code="KRO",
            case_type=CaseType.BOND,
            languages=("spa",),
            referrals=(PartnerRef(partner_id=PARTNERS[1], external_id=f"long-{i}"),),
        )
        for i, code in enumerate([*extra, extra[0]])
    ]
    at = START + timedelta(weeks=9)
    records = [encode(c, source="/services/intake", time=at, topic=served.cases_topic) for c in cases]
    facilities = await served.reporting.one(BY_NAME["facilities"], None, View.STAFF, Filters())
    await publish(served.settings.kafka_bootstrap_servers, records)
    total = len(facilities.rows) + len(extra)

    async def listed() -> int:
        response = await served.reporting.one(BY_NAME["facilities"], None, View.STAFF, Filters())
        return len(response.rows)

    await _until(listed, total)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{served.url}/dashboard")
    rows = page.locator("#facilities tbody tr")
    assert await rows.count() == total
    assert await page.locator("#facilities tbody tr:visible").count() == 10
    await page.click("button.show-all")
    assert await page.locator("#facilities tbody tr:visible").count() == total

    header = page.locator("#facilities thead th", has_text="Open")
    await header.locator("button").click()
    assert await header.get_attribute("aria-sort") == "descending"
    values = [
        float(v or -1)
        for v in await page.locator("#facilities tbody tr td:nth-of-type(1)").evaluate_all(
            "cells => cells.map(c => c.dataset.value)"
        )
    ]
    assert values == sorted(values, reverse=True)
    await header.locator("button").click()
    assert await header.get_attribute("aria-sort") == "ascending"
    assert await page.locator("#facilities tbody tr:visible").count() == total  # still all shown
    await page.close()
