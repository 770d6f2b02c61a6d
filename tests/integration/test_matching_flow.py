"""Matching's service layer against the real database: proposals, answers, capacity, escalations."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from lastline_matching.placement import Timing
from lastline_shared.contracts.cases import CaseClosed, CaseOpened, CaseUpdated
from lastline_shared.contracts.enums import (
    CaseOutcome,
    CaseType,
    DeclineReason,
    ExperienceLevel,
    PracticeArea,
    VolunteerRole,
    VolunteerWithdrawalReason,
)
from lastline_shared.contracts.matches import (
    CaseEscalated,
    MatchDeclined,
    MatchEnded,
    MatchExpired,
    MatchMade,
    MatchProposed,
    MatchRetracted,
    MentorAssigned,
)
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.contracts.volunteers import VolunteerRegistered, VolunteerWithdrawn
from tests.support.matching import MatchingDb, matching_db

pytestmark = pytest.mark.integration

TODAY = date(2026, 12, 1)
NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def db(infra) -> AsyncIterator[MatchingDb]:  # type: ignore[no-untyped-def]
    async with matching_db(infra.database_url, TODAY) as matching:
        yield matching


def volunteer(**kw: Any) -> VolunteerRegistered:
    fields: dict[str, Any] = {
        "volunteer_id": uuid.uuid4(),
        "name": "Dana Whitfield",
        "email": f"v{uuid.uuid4().hex[:6]}@example.org",
        "roles": (VolunteerRole.ATTORNEY,),
        "languages": ("es", "en"),
        "experience_level": ExperienceLevel.EXPERIENCED,
        "practice_areas": (PracticeArea.ASYLUM,),
        "max_active_cases": 1,
        "remote": True,
    }
    return VolunteerRegistered(**(fields | kw))


def case(days_to_hearing: int = 30, **kw: Any) -> CaseOpened:
    fields: dict[str, Any] = {
        "case_id": uuid.uuid4(),
        "referrals": (PartnerRef(partner_id="clinic-a", external_id=f"c-{uuid.uuid4().hex[:6]}"),),
        "facility_code": "STWRTGA",
        "court_code": "LUM",
        "case_type": CaseType.ASYLUM,
        "languages": ("es",),
        "next_hearing_date": TODAY + timedelta(days=days_to_hearing),
    }
    return CaseOpened(**(fields | kw))


async def _answer_all(db: MatchingDb, answer: str, **kw: Any) -> list[Any]:
    out: list[Any] = []
    for proposal in await db.of(MatchProposed):
        async with db.sessions.begin() as session:
            data = proposal
            if answer == "accept":
                out.append(await db.placement.accept(session, data.proposal_id, data.volunteer_id, NOW))
            else:
                out.append(
                    await db.placement.decline(
                        session, data.proposal_id, data.volunteer_id, DeclineReason.SCHEDULE, NOW
                    )
                )
    return out


@pytest.mark.asyncio(loop_scope="session")
async def test_case_is_proposed_accepted_and_placed(db: MatchingDb) -> None:
    v = volunteer()
    c = case()
    await db.feed(v, c, now=NOW)
    [proposed] = await db.of(MatchProposed)
    assert proposed.volunteer_id == v.volunteer_id
    assert proposed.score_components
    assert (await db.volunteer(v.volunteer_id))["reserved"] == 1
    [(outcome, match_id)] = await _answer_all(db, "accept")
    assert outcome == "accepted"
    made = await db.of(MatchMade)
    assert [m.match_id for m in made] == [match_id]
    row = await db.volunteer(v.volunteer_id)
    assert (row["reserved"], row["active_cases"]) == (0, 1)
    async with db.sessions.begin() as session:  # accepting twice changes nothing
        again = await db.placement.accept(session, proposed.proposal_id, v.volunteer_id, NOW)
    assert again == ("accepted", None)
    assert len(await db.of(MatchMade)) == 1


@pytest.mark.asyncio(loop_scope="session")
async def test_decline_goes_to_the_next_volunteer_and_never_back(db: MatchingDb) -> None:
    first, second = volunteer(), volunteer()
    c = case()
    await db.feed(first, second, c, now=NOW)
    [p1] = await db.of(MatchProposed)
    async with db.sessions.begin() as session:
        answer = await db.placement.decline(
            session, p1.proposal_id, p1.volunteer_id, DeclineReason.SCHEDULE, NOW
        )
    assert answer == "declined"
    await db.decide(NOW)
    proposals = await db.of(MatchProposed)
    assert len(proposals) == 2
    assert proposals[1].volunteer_id != p1.volunteer_id
    assert [d.reason for d in await db.of(MatchDeclined)] == ["schedule"]
    async with db.sessions.begin() as session:
        await db.placement.decline(
            session,
            proposals[1].proposal_id,
            proposals[1].volunteer_id,
            DeclineReason.SCHEDULE,
            NOW,
        )
    await db.decide(NOW)
    assert len(await db.of(MatchProposed)) == 2  # nobody left who has not declined
    for v in (first, second):
        assert (await db.volunteer(v.volunteer_id))["reserved"] == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_unanswered_proposal_expires_and_moves_on(db: MatchingDb) -> None:
    await db.feed(volunteer(), volunteer(), case(), now=NOW)
    async with db.sessions.begin() as session:
        assert await db.placement.expire_due(session, NOW + timedelta(days=3)) == 1
    await db.decide(NOW)
    assert len(await db.of(MatchExpired)) == 1
    assert len(await db.of(MatchProposed)) == 2


@pytest.mark.asyncio(loop_scope="session")
async def test_urgent_case_goes_to_several_and_the_first_acceptance_wins(db: MatchingDb) -> None:
    volunteers = [volunteer() for _ in range(4)]
    await db.feed(*volunteers, case(days_to_hearing=5), now=NOW)
    proposals = await db.of(MatchProposed)
    assert len(proposals) == 3
    results = await _answer_all(db, "accept")
    assert [r[0] for r in results] == ["accepted", "retracted", "retracted"]
    retracted = await db.of(MatchRetracted)
    assert {r.reason for r in retracted} == {"filled"}
    assert [(await db.volunteer(v.volunteer_id))["reserved"] for v in volunteers] == [0, 0, 0, 0]


@pytest.mark.asyncio(loop_scope="session")
async def test_capacity_holds_under_concurrent_proposals(db: MatchingDb) -> None:
    v = volunteer(max_active_cases=1)
    await db.feed(v, now=NOW)
    cases = [case() for _ in range(6)]

    async def open_case(c: CaseOpened) -> None:
        async with db.sessions.begin() as session:
            await db.placement.on_case(session, c, NOW)

    await asyncio.gather(*(open_case(c) for c in cases))
    await asyncio.gather(*(db.decide(NOW) for _ in range(4)))  # four decision loops at once
    assert len(await db.of(MatchProposed)) == 1
    row = await db.volunteer(v.volunteer_id)
    assert row["active_cases"] + row["reserved"] <= row["max_active_cases"]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_batch_decides_several_cases_in_one_transaction_within_capacity(db: MatchingDb) -> None:
    v = volunteer(max_active_cases=2)
    await db.feed(v, now=NOW)
    async with db.sessions.begin() as session:
        for c in [case() for _ in range(5)]:
            await db.placement.on_case(session, c, NOW)
    async with db.sessions.begin() as session:
        assert await db.placement.decide_batch(session, NOW, 16) == 5
    proposals = await db.of(MatchProposed)
    assert len({p.case_id for p in proposals}) == len(proposals) == 2
    assert (await db.volunteer(v.volunteer_id))["reserved"] == 2
    assert await db.decide(NOW) == 0  # the batch took every queued case


@pytest.mark.asyncio(loop_scope="session")
async def test_withdrawn_volunteer_ends_the_match_and_the_case_is_offered_again(db: MatchingDb) -> None:
    first, second = volunteer(), volunteer()
    c = case()
    await db.feed(first, c, now=NOW)
    await _answer_all(db, "accept")
    await db.feed(
        second,
        VolunteerWithdrawn(volunteer_id=first.volunteer_id, reason=VolunteerWithdrawalReason.NO_CAPACITY),
        now=NOW,
    )
    [ended] = await db.of(MatchEnded)
    assert ended.reason == "volunteer_withdrew"
    proposals = await db.of(MatchProposed)
    assert proposals[-1].volunteer_id == second.volunteer_id


@pytest.mark.asyncio(loop_scope="session")
async def test_closed_case_retracts_its_proposals(db: MatchingDb) -> None:
    v, c = volunteer(), case()
    await db.feed(v, c, now=NOW)
    await db.feed(CaseClosed(case_id=c.case_id, outcome=CaseOutcome.RELEASED, closed_on=TODAY), now=NOW)
    [retracted] = await db.of(MatchRetracted)
    assert retracted.reason == "case_closed"
    assert (await db.volunteer(v.volunteer_id))["reserved"] == 0


@pytest.mark.asyncio(loop_scope="session")
async def test_transfer_out_of_reach_ends_the_match(db: MatchingDb) -> None:
    v = volunteer(remote=False, facilities_reachable=("STWRTGA",))
    c = case()
    await db.feed(v, c, now=NOW)
    await _answer_all(db, "accept")
    moved = CaseUpdated(**(c.model_dump() | {"facility_code": "IRWINGA", "changes": ("transferred",)}))
    await db.feed(moved, now=NOW)
    [ended] = await db.of(MatchEnded)
    assert ended.reason == "case_transferred"


@pytest.mark.asyncio(loop_scope="session")
async def test_escalates_once_per_level_with_causes(db: MatchingDb) -> None:
    await db.feed(volunteer(languages=("en",)), case(days_to_hearing=10, languages=("mam",)), now=NOW)
    async with db.sessions.begin() as session:
        assert await db.placement.escalate_due(session, NOW) == 1
        assert await db.placement.escalate_due(session, NOW) == 0  # level 14 raised already
    [escalated] = await db.of(CaseEscalated)
    assert escalated.level == 14
    assert escalated.causes == ("no_language_match",)
    db.clock["today"] = TODAY + timedelta(days=4)
    async with db.sessions.begin() as session:
        assert await db.placement.escalate_due(session, NOW) == 1
    assert [e.level for e in await db.of(CaseEscalated)] == [14, 7]
    db.clock["today"] = TODAY


@pytest.mark.asyncio(loop_scope="session")
async def test_novice_gets_a_mentor(db: MatchingDb) -> None:
    mentor = volunteer(
        experience_level=ExperienceLevel.EXPERT, can_mentor=True, roles=(VolunteerRole.MENTOR,)
    )
    novice = volunteer(experience_level=ExperienceLevel.NOVICE, practice_areas=(), wants_mentor=True)
    await db.feed(mentor, novice, case(), now=NOW)
    [proposal] = await db.of(MatchProposed)
    assert proposal.mentor_needed
    await _answer_all(db, "accept")
    [assigned] = await db.of(MentorAssigned)
    assert (assigned.mentor_id, assigned.mentee_id) == (mentor.volunteer_id, novice.volunteer_id)


@pytest.mark.asyncio(loop_scope="session")
async def test_timing_shrinks_as_the_hearing_nears() -> None:
    timing = Timing()
    assert timing.expires_at(NOW, None) - NOW == timedelta(hours=48)
    assert timing.expires_at(NOW, TODAY + timedelta(days=2)) - NOW < timedelta(hours=12)
    assert timing.expires_at(NOW, TODAY) - NOW == timedelta(hours=2)
