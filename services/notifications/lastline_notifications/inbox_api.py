"""The staff inbox over HTTP: list (filter by facility, partner, kind), mark done, and a live stream.

The stream is server-sent events: each new item is an ``item`` event whose id is the item's id, so a
client that reconnects with ``Last-Event-ID`` gets what it missed. Items are pushed when the
transaction that wrote them commits (PostgreSQL NOTIFY, one listener per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import asyncpg
import structlog
from fastapi import APIRouter, Depends, Header, Query
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import EventSourceResponse

from lastline_notifications.inbox import InboxStore
from lastline_shared.auth import Principal, require_role
from lastline_shared.ops import ProblemError

log = structlog.get_logger(__name__)

STREAM_PAGE = 500
Staff = Annotated[Principal, Depends(require_role("staff"))]
Kind = Literal["escalation", "placement", "rejection", "delivery_failed", "match_ended"]


class Broadcast:
    """Tells every waiting stream that new items committed (a counter and a condition)."""

    def __init__(self, dsn: str, channel: str) -> None:
        self._dsn = dsn
        self._channel = channel
        self._generation = 0
        self._changed = asyncio.Condition()

    @property
    def generation(self) -> int:
        return self._generation

    async def bump(self) -> None:
        async with self._changed:
            self._generation += 1
            self._changed.notify_all()

    async def wait(self, seen: int, timeout_s: float) -> int:
        """Until the generation passes ``seen`` (or the timeout); returns the generation."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self._generation > seen), timeout_s)
            return self._generation

    async def listen(self) -> None:
        """LISTEN until cancelled; reconnects, and bumps after reconnecting (items may have come)."""
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(
                    self._channel, lambda *_: asyncio.get_running_loop().create_task(self.bump())
                )
                closed = asyncio.Event()
                conn.add_termination_listener(lambda *_, closed=closed: closed.set())
                await self.bump()
                await closed.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("inbox listener reconnecting", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)


def build_router(
    *, sessions: async_sessionmaker[AsyncSession], store: InboxStore, broadcast: Broadcast
) -> APIRouter:
    router = APIRouter(prefix="/v1/inbox", tags=["staff inbox"])

    @router.get("/items", summary="Open items, escalations first (most urgent first), then newest")
    async def list_items(
        _: Staff,
        *,
        facility: str | None = None,
        partner: str | None = None,
        kind: Kind | None = None,
        include_done: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        async with sessions() as session:
            items = await store.listing(
                session,
                facility=facility,
                partner=partner,
                kind=kind,
                include_done=include_done,
                limit=limit,
                offset=offset,
            )
        return {"items": items}

    @router.post("/items/{item_id}/done", summary="Mark an item done")
    async def mark_done(item_id: int, principal: Staff) -> dict[str, Any]:
        async with sessions() as session, session.begin():
            item = await store.mark_done(session, item_id, principal.subject, datetime.now(UTC))
        if item is None:
            raise ProblemError(404, "Not found", "no such inbox item")
        return item

    @router.get(
        "/stream",
        summary="Live stream of new items (server-sent events; resume with Last-Event-ID)",
        response_class=EventSourceResponse,
    )
    async def stream(
        _: Staff,
        *,
        facility: str | None = None,
        partner: str | None = None,
        kind: Kind | None = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventSourceResponse:
        async with sessions() as session:
            if last_event_id and last_event_id.isdigit():
                after = int(last_event_id)
            else:
                after = await store.last_id(session)
        filters = {"facility": facility, "partner": partner, "kind": kind}

        async def events() -> AsyncIterator[dict[str, str]]:
            nonlocal after
            seen = broadcast.generation
            yield {"event": "ready", "data": json.dumps({"after": after})}
            while True:
                async with sessions() as session:
                    items = await store.since(session, after, STREAM_PAGE, **filters)
                for item in items:
                    after = item["item_id"]
                    yield {"event": "item", "id": str(after), "data": json.dumps(item)}
                if len(items) < STREAM_PAGE:
                    seen = await broadcast.wait(seen, timeout_s=15.0)

        return EventSourceResponse(events(), ping=15)

    return router
