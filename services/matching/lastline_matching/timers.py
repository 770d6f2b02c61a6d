"""Matching's loops: decisions on queued cases, proposals that expire, cases that escalate, and the
periodic global pass (``reoptimise.py``).

Each loop works in short transactions and claims its rows with ``SKIP LOCKED``, so several
matching instances share the work without doing it twice. The decision loops wake on the queue's
NOTIFY, at the commit of whatever queued a case.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_matching.placement import Placement
from lastline_matching.reoptimise import Reoptimiser
from lastline_shared.consumer import is_transient
from lastline_shared.db import asyncpg_dsn
from lastline_shared.runtime import ServiceRuntime
from lastline_shared.wakeup import Wakeup

log = structlog.get_logger(__name__)

MAX_DECISION_ATTEMPTS = 5
"""A case whose decision keeps failing leaves the queue after this many tries (escalations still see it)."""


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


def _decisions(
    runtime: ServiceRuntime, placement: Placement, wakeup: Wakeup, batch: int
) -> Callable[[], Coroutine[Any, Any, None]]:
    store = placement.store

    async def run() -> None:
        failures = 0
        while True:
            claimed: list[UUID] = []
            try:
                async with runtime.sessions() as session, session.begin():
                    # After a failure one case at a time, to find the one that fails.
                    size = batch if failures == 0 else 1
                    done = await placement.decide_batch(session, datetime.now(UTC), size, claimed)
                failures = 0
                if not done:
                    await wakeup.wait()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # The claim rolled back with the decisions: the cases are still queued, and the
                # places the batch took in memory were not taken.
                placement.pools.invalidate()
                failures += 1
                if len(claimed) == 1 and not is_transient(error):
                    log.error("decision failed", case_id=str(claimed[0]), error=repr(error))
                    with contextlib.suppress(Exception):
                        async with runtime.sessions() as session, session.begin():
                            await store.postpone(session, claimed[0], 5.0 * failures, MAX_DECISION_ATTEMPTS)
                await asyncio.sleep(min(0.05 * 2**failures, 5.0))

    return run


def register(
    runtime: ServiceRuntime,
    placement: Placement,
    *,
    expiry_every_s: float,
    escalation_every_s: float,
    decision_loops: int = 2,
    decision_batch: int = 16,
    reoptimiser: Reoptimiser | None = None,
    reoptimise_every_s: float = 0,
) -> None:
    dsn = asyncpg_dsn(runtime.settings.database_url)
    wakeup = Wakeup(dsn, placement.store.pending_channel, poll_interval_s=1.0)
    runtime.add_task("decision-listener", wakeup.listen)
    for i in range(decision_loops):
        runtime.add_task(f"decisions-{i}", _decisions(runtime, placement, wakeup, decision_batch))
    runtime.add_task("expiry", _loop(runtime, "proposal expiry", expiry_every_s, placement.expire_due))
    runtime.add_task("escalation", _loop(runtime, "escalation", escalation_every_s, placement.escalate_due))
    if reoptimiser is not None and reoptimise_every_s > 0:
        runtime.add_task("global-pass", _loop(runtime, "global pass", reoptimise_every_s, reoptimiser.run))
