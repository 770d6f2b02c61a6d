"""Waking a background loop when another transaction commits work for it (PostgreSQL LISTEN/NOTIFY).

A NOTIFY sent inside a transaction is delivered only when it commits, so a loop that waits on a
:class:`Wakeup` sees the work as soon as it is visible, and polls as a fallback for the gaps (a
lost connection, a notification sent before it listened).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)


class Wakeup:
    def __init__(self, dsn: str, channel: str, *, poll_interval_s: float) -> None:
        self._dsn = dsn
        self.channel = channel
        self._poll_interval_s = poll_interval_s
        self._event = asyncio.Event()
        self._stopping = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def stop(self) -> None:
        self._stopping.set()
        self._event.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def wait(self) -> None:
        """Until notified, stopped, or the poll interval passed."""
        self._event.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), self._poll_interval_s)

    async def sleep(self, seconds: float) -> None:
        """Until ``seconds`` passed or stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def listen(self) -> None:
        """LISTEN until stopped; reconnects quietly (polling covers the gaps)."""
        while not self._stopping.is_set():
            conn: Any = None
            try:
                conn = await asyncpg.connect(self._dsn)
                await conn.add_listener(self.channel, lambda *_: self._event.set())
                self._event.set()  # work may have committed while we were not listening
                while not self._stopping.is_set() and not conn.is_closed():
                    await self.sleep(5.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("listener reconnecting", channel=self.channel, error=repr(exc))
                await self.sleep(1.0)
            finally:
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
