"""Notifications' HTTP on the real database: staff inbox (list, filters, done, live stream), webhook
subscriptions (admin) and delivery replay (staff)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from lastline_notifications import inbox_api, webhook_api
from lastline_notifications.triggers import InboxEntry, Planned, Trigger, webhook_destination
from lastline_shared.auth import issue_staff_token
from lastline_shared.contracts.enums import NotificationChannel, RecipientKind
from lastline_shared.db import asyncpg_dsn
from lastline_shared.ops import create_http_app
from tests.integration.test_notifications_delivery import (  # the same throwaway schema and parts
    SETTINGS,
    Notifications,
    free_port,
    mailbox,
    nf,
)

pytestmark = pytest.mark.integration
__all__ = ["mailbox", "nf"]  # fixtures

STAFF = {"authorization": f"Bearer {issue_staff_token(SETTINGS, 'staff:ana')}"}
ADMIN = {"authorization": f"Bearer {issue_staff_token(SETTINGS, 'staff:root', 'admin')}"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def server(nf: Notifications, infra: Any) -> AsyncIterator[str]:
    """The routers served by uvicorn on a free port (the stream needs a real server), with the
    inbox listener running as the runtime would run it."""
    broadcast = inbox_api.Broadcast(asyncpg_dsn(infra.database_url), nf.inbox.channel)
    app = create_http_app(
        SETTINGS,
        routers=[
            inbox_api.build_router(sessions=nf.sessions, store=nf.inbox, broadcast=broadcast),
            webhook_api.build_router(
                sessions=nf.sessions, subscriptions=nf.subscriptions, deliveries=nf.store
            ),
        ],
    )
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    listener = asyncio.create_task(broadcast.listen())
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        await task
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


@pytest_asyncio.fixture(loop_scope="session")
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=10) as client:
        yield client


async def add_items(nf: Notifications, *entries: InboxEntry) -> list[int]:
    async with nf.sessions.begin() as session:
        return await nf.inbox.add(session, [(str(uuid.uuid4()), entry) for entry in entries])


@pytest.mark.asyncio(loop_scope="session")
async def test_inbox_lists_escalations_most_urgent_first_filters_and_marks_done(
    nf: Notifications, http: httpx.AsyncClient
) -> None:
    facility = f"F{uuid.uuid4().hex[:6].upper()}"
    ids = await add_items(
        nf,
        InboxEntry("placement", "placed", {}, facility_code=facility),
        InboxEntry("escalation", "14 days", {}, facility_code=facility, level=14),
        InboxEntry("escalation", "3 days", {}, facility_code=facility, level=3),
        InboxEntry("rejection", "rejected", {}, facility_code=facility, partner_id="clinic-x"),
    )
    assert (await http.get("/v1/inbox/items")).status_code == 401
    listed = (await http.get("/v1/inbox/items", params={"facility": facility}, headers=STAFF)).json()
    assert [i["title"] for i in listed["items"]] == ["3 days", "14 days", "rejected", "placed"]
    only = (
        await http.get("/v1/inbox/items", params={"facility": facility, "kind": "rejection"}, headers=STAFF)
    ).json()
    assert [i["partner_id"] for i in only["items"]] == ["clinic-x"]
    done = await http.post(f"/v1/inbox/items/{ids[2]}/done", headers=STAFF)
    assert (done.status_code, done.json()["done_by"]) == (200, "staff:ana")
    listed = (await http.get("/v1/inbox/items", params={"facility": facility}, headers=STAFF)).json()
    assert [i["title"] for i in listed["items"]] == ["14 days", "rejected", "placed"]
    assert (await http.post("/v1/inbox/items/999999999/done", headers=STAFF)).status_code == 404


@pytest.mark.asyncio(loop_scope="session")
async def test_live_stream_pushes_new_items_as_they_commit(
    nf: Notifications, http: httpx.AsyncClient
) -> None:
    facility = f"F{uuid.uuid4().hex[:6].upper()}"
    received: list[dict[str, Any]] = []

    async def listen() -> None:
        async with http.stream("GET", "/v1/inbox/stream", params={"facility": facility}, headers=STAFF) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            event = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ").strip()
                elif line.startswith("data: ") and event == "item":
                    received.append(json.loads(line.removeprefix("data: ")))
                    if len(received) == 2:
                        return

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.5)  # subscribed
    await add_items(nf, InboxEntry("placement", "elsewhere", {}, facility_code="OTHER"))
    first, second = await add_items(
        nf,
        InboxEntry("escalation", "urgent", {}, facility_code=facility, level=3),
        InboxEntry("placement", "placed", {}, facility_code=facility),
    )
    await asyncio.wait_for(task, 10)
    assert [(i["item_id"], i["title"]) for i in received] == [(first, "urgent"), (second, "placed")]


@pytest.mark.asyncio(loop_scope="session")
async def test_subscriptions_are_admin_only_and_show_the_secret_once(
    nf: Notifications, http: httpx.AsyncClient
) -> None:
    body = {
        "partner_id": "clinic-h",
        "url": "https://clinic-h.example.org/hooks",
        "kinds": ["placed", "closed"],
    }
    assert (await http.post("/v1/webhooks/subscriptions", json=body, headers=STAFF)).status_code == 403
    created = await http.post("/v1/webhooks/subscriptions", json=body, headers=ADMIN)
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    listed = (
        await http.get("/v1/webhooks/subscriptions", params={"partner": "clinic-h"}, headers=ADMIN)
    ).json()
    [sub] = listed["subscriptions"]
    assert sub["kinds"] == ["closed", "placed"]
    assert "secret" not in sub
    assert secret not in json.dumps(listed)
    bad = await http.post("/v1/webhooks/subscriptions", json={**body, "kinds": ["everything"]}, headers=ADMIN)
    assert bad.status_code == 422
    gone = await http.delete(f"/v1/webhooks/subscriptions/{sub['subscription_id']}", headers=ADMIN)
    assert gone.status_code == 204
    assert (
        await http.delete(f"/v1/webhooks/subscriptions/{sub['subscription_id']}", headers=ADMIN)
    ).status_code == 404


@pytest.mark.asyncio(loop_scope="session")
async def test_staff_see_failed_webhook_deliveries_and_replay_them(
    nf: Notifications, http: httpx.AsyncClient
) -> None:
    trigger = Trigger(str(uuid.uuid4()), "match-made", datetime.now(UTC), None)
    planned = Planned(
        NotificationChannel.WEBHOOK,
        webhook_destination(uuid.uuid4()),
        RecipientKind.PARTNER,
        "clinic-r",
        "webhook_placed",
        context={"payload": {"type": "case.placed", "data": {}}},
    )
    async with nf.sessions.begin() as session:
        await nf.store.record(session, [(trigger, planned)])
        d = nf.tables.deliveries
        await session.execute(
            d.update().where(d.c.source_event_id == trigger.event_id).values(status="failed", attempts=8)
        )
    failed = await nf.deliveries(source_event_id=trigger.event_id)
    listed = (
        await http.get(
            "/v1/webhooks/deliveries", params={"status": "failed", "partner": "clinic-r"}, headers=STAFF
        )
    ).json()
    ids = {d["notification_id"] for d in listed["deliveries"]}
    target = str(failed[0]["notification_id"])
    assert target in ids
    replayed = await http.post(f"/v1/webhooks/deliveries/{target}/replay", headers=STAFF)
    assert replayed.status_code == 202
    again = await http.post(f"/v1/webhooks/deliveries/{target}/replay", headers=STAFF)
    assert again.status_code == 409  # pending: nothing to replay yet
    assert (
        await http.post(f"/v1/webhooks/deliveries/{uuid.uuid4()}/replay", headers=STAFF)
    ).status_code == 404
