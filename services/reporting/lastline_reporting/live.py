"""Telling dashboards that figures changed: PostgreSQL LISTEN, fanned out to server-sent events.

Every committed batch sends a NOTIFY (from whichever instance projected it); each instance listens
on one connection and wakes its open streams. A stream sends only a counter and a time, never data:
the page then fetches the figures it shows, with its own filters and view. Bursts coalesce: a
stream that is still sending when more batches commit sends the latest state once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import structlog

from lastline_shared.db import asyncpg_dsn

log = structlog.get_logger(__name__)


class LiveUpdates:
    def __init__(self, database_url: str, channel: str) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self.channel = channel
        self.seq = 0
        self.at: datetime | None = None
        self.generation: int | None = None
        self._changed = asyncio.Condition()
        self.listening = asyncio.Event()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.generation = orjson.loads(payload).get("generation", self.generation)
        self.seq += 1
        self.at = datetime.now(UTC)
        asyncio.get_running_loop().create_task(self._wake())

    async def _wake(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def run(self) -> None:
        """LISTEN until cancelled, reconnecting after a lost connection."""
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(self.channel, self._on_notify)
                self.listening.set()
                # asyncpg notices a lost connection only when it is used: look now and then.
                while not conn.is_closed():  # noqa: ASYNC110
                    await asyncio.sleep(2.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live updates: listener reconnecting", error=repr(exc))
                await asyncio.sleep(1.0)
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)

    def state(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat() if self.at else None,
            "generation": self.generation,
        }

    async def stream(self) -> AsyncIterator[dict[str, Any]]:
        """The current state, then each new one (at most one pending: bursts coalesce)."""
        seen = self.seq
        yield {"event": "projected", "data": orjson.dumps(self.state()).decode()}
        while True:
            async with self._changed:
                while self.seq == seen:
                    await self._changed.wait()
            seen = self.seq
            yield {"event": "projected", "data": orjson.dumps(self.state()).decode()}
