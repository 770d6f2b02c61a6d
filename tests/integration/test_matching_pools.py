"""Online decisions over each instance's in-memory volunteers (``pools.py``), kept in step with the
table, and decisions that never wait for a volunteer or case another transaction holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from lastline_matching.pools import LivePools
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import (
    ExperienceLevel,
    VolunteerWithdrawalReason,
)
from lastline_shared.contracts.matches import MatchProposed
from lastline_shared.contracts.volunteers import VolunteerRegistered, VolunteerUpdated, VolunteerWithdrawn
from tests.integration.test_matching_flow import NOW, TODAY, case
from tests.integration.test_matching_flow import volunteer as one_place_volunteer
from tests.support.matching import MatchingDb, matching_db

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def db(infra) -> AsyncIterator[MatchingDb]:  # type: ignore[no-untyped-def]
    async with matching_db(infra.database_url, TODAY) as matching:
        yield matching


def volunteer(**kw: Any) -> VolunteerRegistered:
    """``test_matching_flow``'s volunteer, with room for several cases."""
    return one_place_volunteer(**({"max_active_cases": 5} | kw))


async def proposed_to(db: MatchingDb, c: CaseOpened) -> list[uuid.UUID]:
    return [p.volunteer_id for p in await db.of(MatchProposed) if p.case_id == c.case_id]


async def test_a_decision_weighs_every_eligible_volunteer(db: MatchingDb) -> None:
    # 80 idle novices nobody can mentor (so none may take a case) and one experienced attorney with
    # 4 of 5 places taken: a prefilter of the 60 least loaded saw only novices and proposed nothing.
    novices = [volunteer(experience_level=ExperienceLevel.NOVICE) for _ in range(80)]
    expert = volunteer()
    await db.feed(*novices, expert, now=NOW)
    v = db.tables.volunteers
    async with db.sessions.begin() as session:
        await session.execute(update(v).where(v.c.volunteer_id == expert.volunteer_id).values(active_cases=4))
    c = case()
    await db.feed(c, now=NOW)
    assert await proposed_to(db, c) == [expert.volunteer_id]


async def test_the_pool_follows_registrations_withdrawals_updates_and_load(db: MatchingDb) -> None:
    first = volunteer(max_active_cases=1)
    await db.feed(first, now=NOW)
    one, two, three = case(), case(), case()
    await db.feed(one, now=NOW)
    assert await proposed_to(db, one) == [first.volunteer_id]
    await db.feed(two, now=NOW)
    assert await proposed_to(db, two) == []  # the only volunteer is full (a proposal holds the place)

    second = volunteer(languages=("fr",))  # registered, but shares no language with the client
    await db.feed(second, now=NOW)
    assert await proposed_to(db, two) == []
    await db.feed(
        VolunteerUpdated(**(second.model_dump() | {"languages": ("fr", "es")})),
        now=NOW,
    )
    assert await proposed_to(db, two) == [second.volunteer_id]  # the update reached the pool

    withdrawn = VolunteerWithdrawn(volunteer_id=second.volunteer_id, reason=VolunteerWithdrawalReason.OTHER)
    await db.feed(withdrawn, now=NOW)
    await db.feed(three, now=NOW)
    assert second.volunteer_id not in await proposed_to(db, three)  # withdrawn: out of the pool


async def test_a_decision_takes_the_next_volunteer_rather_than_wait_for_a_held_one(db: MatchingDb) -> None:
    near = volunteer(remote=False, facilities_reachable=("STWRTGA",))  # the better score: close by
    far = volunteer()
    await db.feed(near, far, now=NOW)
    first = case()
    await db.feed(first, now=NOW)
    assert await proposed_to(db, first) == [near.volunteer_id]

    v = db.tables.volunteers
    async with db.sessions.begin() as holder:  # another transaction (an answer, another instance)
        await holder.execute(select(v).where(v.c.volunteer_id == near.volunteer_id).with_for_update())
        second = case()
        await asyncio.wait_for(db.feed(second, now=NOW), timeout=10)  # waiting would hang here
        assert await proposed_to(db, second) == [far.volunteer_id]

        await holder.execute(select(v).where(v.c.volunteer_id == far.volunteer_id).with_for_update())
        third = case()
        await asyncio.wait_for(db.feed(third, now=NOW), timeout=10)
        assert await proposed_to(db, third) == []  # both held: queued again, shortly
        q = db.tables.pending
        async with db.sessions() as session:
            queued = (await session.execute(select(q.c.case_id))).scalars().all()
        assert queued == [third.case_id]
    await asyncio.sleep(0.6)
    await db.decide(NOW)
    assert await proposed_to(db, third) == [near.volunteer_id]


async def test_a_claim_takes_at_most_the_batch(db: MatchingDb) -> None:
    async with db.sessions.begin() as session:
        await db.placement.store.queue(session, [uuid.uuid4() for _ in range(300)])
    async with db.sessions.begin() as session:
        assert len(await db.placement.store.claim_many(session, 16)) == 16


async def test_pools_rebuild_at_most_so_often_and_a_waiting_case_is_decided_after(
    db: MatchingDb,
) -> None:
    clock = [0.0]
    db.placement.pools = LivePools(db.tables, rebuild_every_s=60, clock=lambda: clock[0])
    first = volunteer(max_active_cases=1)
    one, two = case(), case()
    await db.feed(first, one, now=NOW)
    assert await proposed_to(db, one) == [first.volunteer_id]

    second = volunteer()
    await db.feed(second, two, now=NOW)  # the pool was built a moment ago: not rebuilt yet
    assert await proposed_to(db, two) == []
    q = db.tables.pending
    async with db.sessions() as session:
        assert (await session.execute(select(q.c.case_id))).scalars().all() == [two.case_id]
    clock[0] = 61.0
    await asyncio.sleep(0.6)
    await db.decide(NOW)
    assert await proposed_to(db, two) == [second.volunteer_id]


async def test_a_consumer_batch_queues_its_cases_once_at_its_end(db: MatchingDb) -> None:
    q = db.tables.pending
    cases = [case() for _ in range(3)]
    async with db.sessions.begin() as session:
        async with db.placement.store.queueing_once(session):
            for c in cases:
                await db.placement.on_case(session, c, NOW)
            assert (await session.execute(select(q.c.case_id))).scalars().all() == []  # collected
        queued = (await session.execute(select(q.c.case_id))).scalars().all()
    assert sorted(queued) == sorted(c.case_id for c in cases)
