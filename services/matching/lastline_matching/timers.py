"""Matching's clocks: proposals that expire and cases that escalate as their hearing nears.

Each loop works in short transactions and claims its rows with ``SKIP LOCKED``, so several
matching instances share the work without doing it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_matching.placement import Placement
from lastline_shared.runtime import ServiceRuntime

log = structlog.get_logger(__name__)


def _loop(
    runtime: ServiceRuntime,
    name: str,
    every_s: float,
    work: Callable[[AsyncSession, datetime], Awaitable[int]],
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def run() -> None:
        while True:
            try:
                async with runtime.sessions() as session, session.begin():
                    done = await work(session, datetime.now(UTC))
                if done:
                    log.info(f"{name} done", count=done)
            except Exception as error:  # a timer must outlive a database restart
                log.warning(f"{name} failed", error=repr(error))
            await asyncio.sleep(every_s)

    return run


def register(
    runtime: ServiceRuntime, placement: Placement, *, expiry_every_s: float, escalation_every_s: float
) -> None:
    runtime.add_task("expiry", _loop(runtime, "proposal expiry", expiry_every_s, placement.expire_due))
    runtime.add_task("escalation", _loop(runtime, "escalation", escalation_every_s, placement.escalate_due))
