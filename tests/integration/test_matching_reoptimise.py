"""The periodic global pass against the real database: a greedy early choice that blocks a later,
harder case is corrected through the outbox, without overbooking and without touching an answer in
progress, one instance at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import select, text

from lastline_shared.contracts.cases import CaseClosed, CaseOpened
from lastline_shared.contracts.enums import CaseOutcome, ExperienceLevel
from lastline_shared.contracts.matches import MatchProposed, MatchRetracted
from lastline_shared.contracts.volunteers import VolunteerRegistered
from tests.integration.test_matching_flow import NOW, TODAY, case, volunteer
from tests.support.matching import MatchingDb, matching_db

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(loop_scope="session")
async def db(infra) -> AsyncIterator[MatchingDb]:  # type: ignore[no-untyped-def]
    async with matching_db(infra.database_url, TODAY) as matching:
        yield matching


async def _blocked(
    db: MatchingDb,
) -> tuple[VolunteerRegistered, VolunteerRegistered, CaseOpened, CaseOpened]:
    """Two attorneys with one place each: the better one also speaks Mam. A Spanish case comes
    first and greedily takes the better one; then a Mam case that only they could take gets nothing."""
    both = volunteer(languages=("es", "mam"), experience_level=ExperienceLevel.EXPERIENCED)
    spanish_only = volunteer(languages=("es",), experience_level=ExperienceLevel.INTERMEDIATE)
    early, hard = case(languages=("es",)), case(languages=("mam",))
    await db.feed(both, spanish_only, early, hard, now=NOW)
    [proposed] = await db.of(MatchProposed)
    assert (proposed.case_id, proposed.volunteer_id) == (early.case_id, both.volunteer_id)
    return both, spanish_only, early, hard


@pytest.mark.asyncio(loop_scope="session")
async def test_the_pass_corrects_a_greedy_choice_that_blocked_a_harder_case(db: MatchingDb) -> None:
    both, spanish_only, early, hard = await _blocked(db)
    assert await db.reoptimise(NOW) == 2  # one proposal moved, and the case it freed a place for queued
    await db.decide(NOW)  # the online path offers it, with the pass's prices
    [retracted] = await db.of(MatchRetracted)
    assert (retracted.case_id, retracted.volunteer_id) == (early.case_id, both.volunteer_id)
    assert retracted.reason == "reoptimised"
    offers = {(p.case_id, p.volunteer_id) for p in (await db.of(MatchProposed))[1:]}
    assert offers == {
        (early.case_id, spanish_only.volunteer_id),
        (hard.case_id, both.volunteer_id),
    }
    for person in (both, spanish_only):
        row = await db.volunteer(person.volunteer_id)
        assert (row["reserved"], row["active_cases"]) == (1, 0)
    p = db.tables.proposals
    async with db.sessions() as session:
        statuses = sorted((await session.execute(select(p.c.status))).scalars())
    assert statuses == ["open", "open", "retracted"]
    # The scarce volunteer is priced for online decisions; the optimum is stable: nothing moves again.
    prices = db.tables.prices
    async with db.sessions() as session:
        priced = dict((await session.execute(select(prices.c.volunteer_id, prices.c.price))).all())
    assert priced.get(both.volunteer_id, 0) > priced.get(spanish_only.volunteer_id, 0)
    assert await db.reoptimise(NOW) == 0
    assert len(await db.of(MatchProposed)) == 3


@pytest.mark.asyncio(loop_scope="session")
async def test_the_pass_leaves_a_proposal_being_answered_and_runs_once_at_a_time(db: MatchingDb) -> None:
    both, spanish_only, early, _ = await _blocked(db)
    p = db.tables.proposals
    async with db.sessions.begin() as answering:  # an answer in progress holds the proposal's row
        await answering.execute(select(p).where(p.c.case_id == early.case_id).with_for_update())
        assert await db.reoptimise(NOW) == 0
    assert await db.of(MatchRetracted) == []
    async with db.sessions.begin() as other:  # another instance's pass holds the advisory lock
        key = f"lastline-reoptimise:{db.schema}"
        await other.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": key})
        assert await db.reoptimise(NOW) == 0
    assert await db.reoptimise(NOW) == 2
    await db.decide(NOW)
    for person in (both, spanish_only):
        row = await db.volunteer(person.volunteer_id)
        assert row["active_cases"] + row["reserved"] <= row["max_active_cases"]


@pytest.mark.asyncio(loop_scope="session")
async def test_recent_demand_prices_a_scarce_volunteer_and_online_decisions_spare_them(
    db: MatchingDb,
) -> None:
    # The only Mam speaker (two places) also scores best for Spanish cases. Three Mam cases came in
    # the pricing window (two closed since, one waiting with an offer to them): the pass prices the
    # Mam speaker, so the next Spanish case goes to the Spanish-only attorney instead of using up the
    # place Mam clients will need.
    both = volunteer(
        languages=("es", "mam"), experience_level=ExperienceLevel.EXPERIENCED, max_active_cases=2
    )
    spanish_only = volunteer(
        languages=("es",), experience_level=ExperienceLevel.INTERMEDIATE, max_active_cases=2
    )
    await db.feed(both, spanish_only, now=NOW)
    for _ in range(2):
        earlier = case(languages=("mam",))
        await db.feed(earlier, now=NOW)
        closed = CaseClosed(case_id=earlier.case_id, outcome=CaseOutcome.RELEASED, closed_on=TODAY)
        await db.feed(closed, now=NOW)
    await db.feed(case(languages=("mam",)), now=NOW)
    await db.reoptimise(NOW)
    priced = await _prices(db)
    assert priced.get(both.volunteer_id, 0) > priced.get(spanish_only.volunteer_id, 0) == 0
    spanish = case(languages=("es",))
    await db.feed(spanish, now=NOW)
    [offer] = [p for p in await db.of(MatchProposed) if p.case_id == spanish.case_id]
    assert offer.volunteer_id == spanish_only.volunteer_id
    # Its published score is the score, not score minus price: the Mam speaker's would be higher.
    assert offer.score < max(
        p.score for p in await db.of(MatchProposed) if p.volunteer_id == both.volunteer_id
    )


async def _prices(db: MatchingDb) -> dict[object, float]:
    prices = db.tables.prices
    async with db.sessions() as session:
        return {row.volunteer_id: row.price for row in await session.execute(select(prices))}
