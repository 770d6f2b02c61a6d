"""Matching's service layer: from events and volunteers' answers to proposals, matches and escalations.

Every method runs in the caller's transaction (a consumer batch or an HTTP request) and publishes
through the outbox, so a decision and its event are committed together. Decisions about one case
are serialised by locking its row; capacity is reserved with the guarded update in ``store.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

import structlog
from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_matching.choosing import Choice, Chooser
from lastline_matching.domain import CaseView
from lastline_matching.pools import LivePools
from lastline_matching.store import CaseHistory, MatchingStore
from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.cases import CaseClosed, CaseSnapshot, CaseUpdated
from lastline_shared.contracts.enums import (
    CaseChange,
    DeclineReason,
    EscalationCause,
    EscalationLevel,
    MatchEndReason,
    RetractionReason,
    VolunteerRole,
)
from lastline_shared.contracts.envelope import encode
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.matches import (
    CaseEscalated,
    MatchAccepted,
    MatchDeclined,
    MatchEnded,
    MatchExpired,
    MatchMade,
    MatchProposed,
    MatchRetracted,
    MentorAssigned,
)
from lastline_shared.contracts.volunteers import VolunteerProfile, VolunteerWithdrawn
from lastline_shared.outbox import Outbox

log = structlog.get_logger(__name__)

SOURCE = "/services/matching"
RETRY_SKIPPED_S = 0.5
"""A case whose row or chosen volunteers another transaction held is decided again after this."""
LEVELS = (14, 7, 3)
"""Days before the hearing at which a case still missing someone escalates."""
Answer = Literal["accepted", "declined", "expired", "retracted", "filled", "not_found", "not_yours"]


@dataclass(frozen=True)
class Timing:
    """How long a volunteer has to answer: ``base``, but never more than ``share`` of the time left
    before the hearing, and never less than ``floor``."""

    base: timedelta = timedelta(hours=48)
    floor: timedelta = timedelta(hours=2)
    share: float = 0.25
    urgent_days: int = 7
    """Cases this close to their hearing are offered to several volunteers at once."""
    urgent_fanout: int = 3

    def expires_at(self, now: datetime, hearing: date | None) -> datetime:
        if hearing is None:
            return now + self.base
        left = datetime.combine(hearing, datetime.min.time(), tzinfo=UTC) - now
        return now + max(self.floor, min(self.base, left * self.share))


@dataclass(frozen=True, slots=True)
class _Proposal:
    row: dict[str, Any]
    """The ``proposals`` row."""
    event: MatchProposed


class Placement:
    def __init__(
        self,
        store: MatchingStore,
        outbox: Outbox,
        chooser: Chooser,
        *,
        timing: Timing = Timing(),
        today: Callable[[], date],
        pools: LivePools | None = None,
    ) -> None:
        self.store = store
        self._outbox = outbox
        self.chooser = chooser
        self.pools = pools or LivePools(store.t, mentor_capacity=store.mentor_capacity)
        self.timing = timing
        self.today = today

    async def _emit(self, session: AsyncSession, *events: Contract) -> None:
        await self._outbox.add(session, [encode(e, source=SOURCE) for e in events])

    # -- events in ------------------------------------------------------------------------------

    async def on_volunteer(self, session: AsyncSession, event: Contract, now: datetime) -> None:
        if isinstance(event, VolunteerProfile):
            await self.store.upsert_volunteer(session, event)  # the consumer queues waiting cases
        elif isinstance(event, VolunteerWithdrawn) and await self.store.withdraw_volunteer(
            session, event.volunteer_id
        ):
            await self._volunteer_gone(session, event.volunteer_id, now)

    async def on_case(self, session: AsyncSession, event: Contract, now: datetime) -> None:
        if isinstance(event, CaseSnapshot):
            if not await self.store.upsert_case(session, event, now):
                return  # closed already
            if isinstance(event, CaseUpdated) and CaseChange.TRANSFERRED in event.changes:
                await self._recheck_reach(session, event.case_id, now)
            await self.store.queue(session, [event.case_id])
        elif isinstance(event, CaseClosed) and await self.store.close_case(session, event.case_id):
            await self._end_case(session, event.case_id, MatchEndReason.CASE_CLOSED, now)

    async def on_facility(self, session: AsyncSession, event: FacilityStatusChanged, now: datetime) -> None:
        await self.store.set_facility(session, event)
        p, c = self.store.t.proposals, self.store.t.cases
        cases = select(c.c.case_id).where(c.c.facility_code == event.facility_code, c.c.status == "open")
        if event.status.value == "paused":
            rows = await session.execute(
                select(p).where(p.c.status == "open", p.c.case_id.in_(cases)).with_for_update()
            )
            for proposal in rows.mappings().all():
                await self.close_proposal(
                    session, proposal, "retracted", now, RetractionReason.FACILITY_PAUSED
                )
        else:
            await self.store.queue(session, (await session.execute(cases)).scalars().all())

    async def decide_next(self, session: AsyncSession, now: datetime) -> UUID | None:
        """Take one queued case and make its proposals; None when the queue has nothing due."""
        claimed: list[UUID] = []
        await self.decide_batch(session, now, 1, claimed)
        return claimed[0] if claimed else None

    async def decide_batch(
        self, session: AsyncSession, now: datetime, limit: int, claimed: list[UUID] | None = None
    ) -> int:
        """Take up to ``limit`` queued cases and make their proposals in the caller's transaction:
        one claim, one lock of the cases, one read of their histories, then per role one candidate
        query and one statement reserving the place and inserting the proposal; the events go to the
        outbox together. Returns how many cases were claimed (their ids are appended to ``claimed``
        as soon as they are, so a caller whose transaction failed knows which)."""
        case_ids = await self.store.claim_many(session, limit)
        if claimed is not None:
            claimed.extend(case_ids)
        if not case_ids:
            return 0
        await self.pools.refresh(session)
        locked = await self.store.lock_cases(session, case_ids)
        cases = [c for c in locked if c["status"] == "open"]
        histories = await self.store.histories(session, [c["case_id"] for c in cases if not c["paused"]])
        mentor: list[bool] = []  # read once per batch, when a decision needs it
        events: list[MatchProposed] = []
        # Cases held by someone else, or whose chosen volunteers were: decided again shortly.
        again = await self.store.known(session, set(case_ids) - {c["case_id"] for c in locked})
        for case in cases:
            if not case["paused"]:
                made, short = await self._propose(session, case, histories[case["case_id"]], mentor, now)
                events += made
                if short:
                    again.add(case["case_id"])
        await self._emit(session, *events)
        await self.store.queue(session, sorted(again), after_s=RETRY_SKIPPED_S)
        return len(case_ids)

    # -- proposing ------------------------------------------------------------------------------

    async def _propose(
        self,
        session: AsyncSession,
        case: RowMapping,
        history: CaseHistory,
        mentor: list[bool],
        now: datetime,
    ) -> tuple[list[MatchProposed], bool]:
        """Offer the locked case's unfilled roles to the best candidates; returns the proposals and
        whether a role was left short because every chosen reservation failed."""
        facts = case["facts"]
        view = CaseView.from_facts(facts)
        made: list[MatchProposed] = []
        short = False
        hearing = case["next_hearing_date"]
        urgent = hearing is not None and (hearing - self.today()).days <= self.timing.urgent_days
        for role in self.chooser.roles_needed(facts):
            if role in history.matched:
                continue
            open_now = history.open_to(role)
            wanted = (self.timing.urgent_fanout if urgent else 1) - len(open_now)
            if wanted <= 0:
                continue
            if not mentor:
                mentor.append(await self.store.mentor_available(session))
            context = self.chooser.context(view, mentor[0], frozenset(history.declined | open_now))
            spare = wanted + 2  # a spare or two in case a reservation fails
            prices = self.pools.prices()
            candidates = self.pools.best(view, role, context, limit=spare)
            choices = self.chooser.choose_among(view, candidates, role, context, limit=spare, prices=prices)
            if not choices and self.pools.stale:
                short = True  # a volunteer who registered or changed a moment ago may fit: again soon
            failed = False
            for choice in choices:
                if wanted <= 0:
                    break
                attempt = history.attempts(role) + 1
                proposal = self._proposal(case, role, choice, now=now, attempt=attempt)
                if not await self.store.reserve_and_insert(session, proposal.row):
                    failed = True  # filled up or held meanwhile (another instance, another case)
                    continue
                self.pools.took(choice.volunteer_id)
                history.proposals.append((role, choice.volunteer_id, "open"))
                made.append(proposal.event)
                wanted -= 1
            short = short or (wanted > 0 and failed)
        return made, short

    def _proposal(
        self, case: RowMapping, role: VolunteerRole, choice: Choice, *, now: datetime, attempt: int
    ) -> _Proposal:
        proposal_id = uuid4()
        expires_at = self.timing.expires_at(now, case["next_hearing_date"])
        row = {
            "proposal_id": proposal_id,
            "case_id": case["case_id"],
            "volunteer_id": choice.volunteer_id,
            "role": role.value,
            "status": "open",
            "score": choice.score,
            "components": [c.model_dump(mode="json") for c in choice.components],
            "reasons": [r.value for r in choice.reasons],
            "mentor_needed": choice.mentor_needed,
            "attempt": attempt,
            "created_at": now,
            "expires_at": expires_at,
        }
        event = MatchProposed(
            case_id=case["case_id"],
            volunteer_id=choice.volunteer_id,
            role=role,
            proposal_id=proposal_id,
            reasons=tuple(choice.reasons),
            score=choice.score,
            score_components=tuple(choice.components),
            expires_at=expires_at,
            mentor_needed=choice.mentor_needed,
            attempt=attempt,
        )
        return _Proposal(row, event)

    async def insert_proposal(
        self,
        session: AsyncSession,
        case: RowMapping,
        role: VolunteerRole,
        choice: Choice,
        *,
        now: datetime,
        attempt: int,
    ) -> UUID:
        """Insert an open proposal (its place reserved already) and publish it."""
        proposal = self._proposal(case, role, choice, now=now, attempt=attempt)
        await session.execute(self.store.t.proposals.insert().values(proposal.row))
        await self._emit(session, proposal.event)
        return proposal.event.proposal_id

    # -- answers --------------------------------------------------------------------------------

    async def _lock_proposal(self, session: AsyncSession, proposal_id: UUID) -> RowMapping | None:
        p = self.store.t.proposals
        query = select(p).where(p.c.proposal_id == proposal_id).with_for_update()
        return (await session.execute(query)).mappings().first()

    async def accept(
        self, session: AsyncSession, proposal_id: UUID, volunteer_id: UUID, now: datetime
    ) -> tuple[Answer, UUID | None]:
        """The volunteer accepted (having attested no conflict): a match, unless too late."""
        proposal = await self._lock_proposal(session, proposal_id)
        if proposal is None:
            return "not_found", None
        if proposal["volunteer_id"] != volunteer_id:
            return "not_yours", None
        if proposal["status"] != "open":
            return proposal["status"], None
        if proposal["expires_at"] <= now:
            await self.close_proposal(session, proposal, "expired", now)
            return "expired", None
        role = VolunteerRole(proposal["role"])
        case_id = proposal["case_id"]
        await self.store.lock_case(session, case_id)
        match_id = uuid4()
        m = self.store.t.matches
        try:
            async with session.begin_nested():
                await session.execute(
                    m.insert().values(
                        match_id=match_id,
                        case_id=case_id,
                        volunteer_id=volunteer_id,
                        role=role.value,
                        proposal_id=proposal_id,
                        status="active",
                        made_at=now,
                    )
                )
        except IntegrityError:  # another volunteer took this case and role first
            await self.close_proposal(session, proposal, "retracted", now, RetractionReason.FILLED)
            return "filled", None
        await self._set_proposal(session, proposal_id, "accepted", now)
        await self.store.activate(session, volunteer_id)
        common = {"case_id": case_id, "volunteer_id": volunteer_id, "role": role}
        await self._emit(
            session,
            MatchAccepted(**common, proposal_id=proposal_id, conflict_attested=True),
            MatchMade(**common, match_id=match_id, proposal_id=proposal_id),
        )
        for other in await self.store.open_proposals(session, case_id, role):
            await self.close_proposal(session, other, "retracted", now, RetractionReason.FILLED)
        if proposal["mentor_needed"]:
            await self._assign_mentor(session, case_id, match_id, volunteer_id)
        await self._mark_placed_if_complete(session, case_id, now)
        return "accepted", match_id

    async def decline(
        self,
        session: AsyncSession,
        proposal_id: UUID,
        volunteer_id: UUID,
        reason: DeclineReason,
        now: datetime,
    ) -> Answer:
        proposal = await self._lock_proposal(session, proposal_id)
        if proposal is None:
            return "not_found"
        if proposal["volunteer_id"] != volunteer_id:
            return "not_yours"
        if proposal["status"] != "open":
            return proposal["status"]  # type: ignore[no-any-return]
        await self.store.record_decline(session, proposal["case_id"], volunteer_id, reason)
        await self.close_proposal(session, proposal, "declined", now, reason=reason)
        await self.store.queue(session, [proposal["case_id"]])
        return "declined"

    async def expire_due(self, session: AsyncSession, now: datetime) -> int:
        """Unanswered proposals past their time expire; their cases go to the next candidates."""
        expired = await self.store.expiring(session, now)
        # Their volunteers' places are released in id order: in another order two transactions
        # releasing the same volunteers deadlocked (seen under `make chaos`).
        for proposal in sorted(expired, key=lambda p: p["volunteer_id"]):
            await self.close_proposal(session, proposal, "expired", now)
        await self.store.queue(session, [p["case_id"] for p in expired])
        return len(expired)

    async def close_proposal(
        self,
        session: AsyncSession,
        proposal: RowMapping,
        status: str,
        now: datetime,
        retraction: RetractionReason | None = None,
        *,
        reason: DeclineReason | None = None,
    ) -> None:
        await self._set_proposal(session, proposal["proposal_id"], status, now, retraction or reason)
        await self.store.release(session, proposal["volunteer_id"])
        common: dict[str, Any] = {
            "case_id": proposal["case_id"],
            "volunteer_id": proposal["volunteer_id"],
            "role": VolunteerRole(proposal["role"]),
            "proposal_id": proposal["proposal_id"],
        }
        if status == "expired":
            await self._emit(session, MatchExpired(**common))
        elif status == "declined":
            await self._emit(session, MatchDeclined(**common, reason=reason or DeclineReason.OTHER))
        elif status == "retracted":
            await self._emit(
                session, MatchRetracted(**common, reason=retraction or RetractionReason.CASE_CHANGED)
            )

    async def _set_proposal(
        self, session: AsyncSession, proposal_id: UUID, status: str, now: datetime, why: Any = None
    ) -> None:
        p = self.store.t.proposals
        await session.execute(
            update(p)
            .where(p.c.proposal_id == proposal_id)
            .values(status=status, decided_at=now, outcome_reason=getattr(why, "value", why))
        )

    # -- staff ---------------------------------------------------------------------------------

    async def override(
        self,
        session: AsyncSession,
        case_id: UUID,
        volunteer_id: UUID,
        role: VolunteerRole,
        *,
        by: str,
        now: datetime,
    ) -> UUID | None:
        """Staff place a volunteer directly: the current match for the role ends, open offers are
        withdrawn, and the volunteer is placed even beyond their stated capacity (staff decide)."""
        case = await self.store.lock_case(session, case_id)
        v = self.store.t.volunteers
        volunteer = (
            (await session.execute(select(v).where(v.c.volunteer_id == volunteer_id).with_for_update()))
            .mappings()
            .first()
        )
        if case is None or case["status"] == "closed" or volunteer is None or volunteer["status"] != "active":
            return None
        current = await self.store.active_match(session, case_id, role)
        if current is not None:
            await self._end_match(session, current, MatchEndReason.STAFF_OVERRIDE, now)
        for proposal in await self.store.open_proposals(session, case_id, role):
            await self.close_proposal(session, proposal, "retracted", now, RetractionReason.STAFF_OVERRIDE)
        match_id = uuid4()
        await session.execute(
            self.store.t.matches.insert().values(
                match_id=match_id,
                case_id=case_id,
                volunteer_id=volunteer_id,
                role=role.value,
                status="active",
                overridden_by=by,
                made_at=now,
            )
        )
        await session.execute(
            update(v).where(v.c.volunteer_id == volunteer_id).values(active_cases=v.c.active_cases + 1)
        )
        await self._emit(
            session,
            MatchMade(
                case_id=case_id, volunteer_id=volunteer_id, role=role, match_id=match_id, overridden_by=by
            ),
        )
        await self._mark_placed_if_complete(session, case_id, now)
        return match_id

    # -- escalations ----------------------------------------------------------------------------

    async def escalate_due(self, session: AsyncSession, now: datetime) -> int:
        """Open cases 14, 7 and 3 days before their hearing raise ``case-escalated``, once per level,
        saying which roles are missing and why."""
        today = self.today()
        raised = 0
        for case in await self.store.open_cases_due(session, today + timedelta(days=LEVELS[0])):
            days = (case["next_hearing_date"] - today).days
            level = min((lv for lv in LEVELS if days <= lv), default=None)
            already = case["escalated_level"]
            if days < 0 or level is None or (already is not None and already <= level):
                continue
            facts = case["facts"]
            missing = [
                role
                for role in self.chooser.roles_needed(facts)
                if await self.store.active_match(session, case["case_id"], role) is None
            ]
            if not missing:
                continue
            counts = await self.store.proposal_counts(session, case["case_id"], missing[0])
            causes = await self._causes(session, facts, missing, counts)
            await self._emit(
                session,
                CaseEscalated(
                    case_id=case["case_id"],
                    level=EscalationLevel(level),
                    next_hearing_date=case["next_hearing_date"],
                    days_to_hearing=days,
                    facility_code=facts["facility_code"],
                    missing=tuple(missing),
                    proposals_open=counts.get("open", 0),
                    proposals_declined=counts.get("declined", 0),
                    proposals_expired=counts.get("expired", 0),
                    causes=tuple(causes),
                ),
            )
            c = self.store.t.cases
            await session.execute(
                update(c).where(c.c.case_id == case["case_id"]).values(escalated_level=level)
            )
            raised += 1
        return raised

    async def _causes(
        self,
        session: AsyncSession,
        facts: dict[str, Any],
        missing: list[VolunteerRole],
        counts: dict[str, int],
    ) -> list[EscalationCause]:
        causes: list[EscalationCause] = []
        if facts["facility_code"] in await self.store.paused_facilities(session):
            causes.append(EscalationCause.FACILITY_PAUSED)
        for role in missing:
            funnel = await self.store.funnel(
                session,
                role=role,
                facility_code=facts["facility_code"],
                languages=self.chooser.language_filter(facts, role),
            )
            if funnel["role"] == 0:
                causes.append(EscalationCause.NO_VOLUNTEER)
            elif funnel["language"] == 0:
                causes.append(EscalationCause.NO_LANGUAGE_MATCH)
            elif funnel["reach"] == 0:
                causes.append(EscalationCause.NO_REACH)
            elif funnel["room"] == 0:
                causes.append(EscalationCause.NO_CAPACITY)
        if counts.get("open", 0):
            causes.append(EscalationCause.AWAITING_ANSWER)
        elif counts.get("declined", 0) and not causes:
            causes.append(EscalationCause.ALL_DECLINED)
        return list(dict.fromkeys(causes))

    # -- mentors, endings -----------------------------------------------------------------------

    async def _assign_mentor(
        self, session: AsyncSession, case_id: UUID, match_id: UUID, mentee_id: UUID
    ) -> None:
        mentor_id = await self.store.reserve_mentor(session, exclude=mentee_id)
        if mentor_id is None:
            log.warning("no mentor with room for a novice's match", case_id=str(case_id))
            return
        m = self.store.t.matches
        await session.execute(update(m).where(m.c.match_id == match_id).values(mentor_id=mentor_id))
        await self._emit(
            session,
            MentorAssigned(case_id=case_id, match_id=match_id, mentor_id=mentor_id, mentee_id=mentee_id),
        )

    async def _mark_placed_if_complete(self, session: AsyncSession, case_id: UUID, now: datetime) -> None:
        case = await self.store.lock_case(session, case_id)
        if case is None or case["status"] != "open":
            return
        for role in self.chooser.roles_needed(case["facts"]):
            if await self.store.active_match(session, case_id, role) is None:
                return
        await self.store.set_case_status(session, case_id, "placed", now)

    async def _end_match(
        self, session: AsyncSession, match: RowMapping, reason: MatchEndReason, now: datetime
    ) -> None:
        m = self.store.t.matches
        await session.execute(
            update(m)
            .where(m.c.match_id == match["match_id"], m.c.status == "active")
            .values(status="ended", ended_at=now, end_reason=reason.value)
        )
        await self.store.finish(session, match["volunteer_id"])
        if match["mentor_id"] is not None:
            await self.store.release_mentor(session, match["mentor_id"])
        await self._emit(
            session,
            MatchEnded(
                case_id=match["case_id"],
                volunteer_id=match["volunteer_id"],
                role=VolunteerRole(match["role"]),
                match_id=match["match_id"],
                reason=reason,
            ),
        )

    async def _end_case(
        self, session: AsyncSession, case_id: UUID, reason: MatchEndReason, now: datetime
    ) -> None:
        m = self.store.t.matches
        active = await session.execute(select(m).where(m.c.case_id == case_id, m.c.status == "active"))
        for match in active.mappings().all():
            await self._end_match(session, match, reason, now)
        for proposal in await self.store.open_proposals(session, case_id):
            await self.close_proposal(session, proposal, "retracted", now, RetractionReason.CASE_CLOSED)
        await self.store.queue_waiting(session)  # the volunteers freed can take waiting cases

    async def _volunteer_gone(self, session: AsyncSession, volunteer_id: UUID, now: datetime) -> None:
        m, p = self.store.t.matches, self.store.t.proposals
        touched: set[UUID] = set()
        active = await session.execute(
            select(m).where(m.c.volunteer_id == volunteer_id, m.c.status == "active")
        )
        for match in active.mappings().all():
            await self._end_match(session, match, MatchEndReason.VOLUNTEER_WITHDREW, now)
            await self.store.set_case_status(session, match["case_id"], "open", now)
            touched.add(match["case_id"])
        proposals = await session.execute(
            select(p).where(p.c.volunteer_id == volunteer_id, p.c.status == "open").with_for_update()
        )
        for proposal in proposals.mappings().all():
            await self.close_proposal(
                session, proposal, "retracted", now, RetractionReason.VOLUNTEER_WITHDREW
            )
            touched.add(proposal["case_id"])
        await self.store.queue(session, sorted(touched))

    async def _recheck_reach(self, session: AsyncSession, case_id: UUID, now: datetime) -> None:
        """A transfer: placements and offers the volunteer can no longer serve end and are redone."""
        case = await self.store.lock_case(session, case_id)
        if case is None:
            return
        m = self.store.t.matches
        active = await session.execute(select(m).where(m.c.case_id == case_id, m.c.status == "active"))
        for match in active.mappings().all():
            if not await self._still_fits(
                session, case["facts"], match["volunteer_id"], VolunteerRole(match["role"])
            ):
                await self._end_match(session, match, MatchEndReason.CASE_TRANSFERRED, now)
                await self.store.set_case_status(session, case_id, "open", now)
        for proposal in await self.store.open_proposals(session, case_id):
            if not await self._still_fits(
                session, case["facts"], proposal["volunteer_id"], VolunteerRole(proposal["role"])
            ):
                await self.close_proposal(session, proposal, "retracted", now, RetractionReason.CASE_CHANGED)

    async def _still_fits(
        self, session: AsyncSession, facts: dict[str, Any], volunteer_id: UUID, role: VolunteerRole
    ) -> bool:
        v = self.store.t.volunteers
        row = (await session.execute(select(v).where(v.c.volunteer_id == volunteer_id))).mappings().first()
        return row is not None and self.chooser.still_fits(facts, row, role)
