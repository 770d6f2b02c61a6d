"""Matching's state in its own schema: every read and write the service layer makes, in the caller's
transaction. The guarded updates here are what keep capacity and uniqueness true with several
matching instances running (see ``tables.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import and_, delete, func, literal, or_, select, true, union_all, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_matching.tables import MatchingTables
from lastline_shared.contracts.cases import CaseSnapshot
from lastline_shared.contracts.enums import DeclineReason, VolunteerRole
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.volunteers import VolunteerProfile


@dataclass
class CaseHistory:
    matched: set[VolunteerRole] = field(default_factory=set)
    """Roles with an active match."""
    proposals: list[tuple[VolunteerRole, UUID, str]] = field(default_factory=list)
    """Every proposal so far: role, volunteer, status."""
    declined: set[UUID] = field(default_factory=set)

    def open_to(self, role: VolunteerRole) -> set[UUID]:
        return {v for r, v, status in self.proposals if r is role and status == "open"}

    def attempts(self, role: VolunteerRole) -> int:
        return sum(1 for r, _, _ in self.proposals if r is role)


QUEUE_BUFFER = "lastline_matching_queue"
"""The session's ``info`` key of the cases :meth:`MatchingStore.queueing_once` collects."""


class MatchingStore:
    def __init__(self, tables: MatchingTables, *, mentor_capacity: int = 3, schema: str = "matching") -> None:
        self.t = tables
        self.mentor_capacity = mentor_capacity
        self.pending_channel = f"lastline_pending_{schema}"
        """Notified when cases are queued: the decision loops wake at the commit."""

    # -- projections ----------------------------------------------------------------------------

    async def upsert_volunteer(self, session: AsyncSession, profile: VolunteerProfile) -> None:
        """A registered or updated volunteer: active, with the profile's capacity (load is kept)."""
        v = self.t.volunteers
        values = {
            "volunteer_id": profile.volunteer_id,
            "status": "active",
            "profile": profile.model_dump(mode="json"),
            "roles": [role.value for role in profile.roles],
            "languages": list(profile.languages),
            "facilities_reachable": list(profile.facilities_reachable),
            "remote": profile.remote,
            "can_mentor": profile.can_mentor,
            "practice_areas": [area.value for area in profile.practice_areas],
            "experience_level": profile.experience_level.value,
            "federal_courts": list(profile.bar_admissions.federal_courts),
            "eoir_registered": profile.eoir_registered,
            "wants_mentor": profile.wants_mentor,
            "countries_of_expertise": list(profile.countries_of_expertise),
            "registered_partner": profile.registered_by.partner_id if profile.registered_by else None,
            "max_active_cases": profile.max_active_cases,
        }
        statement = insert(v).values(values)
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["volunteer_id"],
                set_={k: statement.excluded[k] for k in values if k != "volunteer_id"}
                | {"updated_at": func.now()},
            )
        )

    async def withdraw_volunteer(self, session: AsyncSession, volunteer_id: UUID) -> bool:
        v = self.t.volunteers
        result = await session.execute(
            update(v)
            .where(v.c.volunteer_id == volunteer_id, v.c.status == "active")
            .values(status="withdrawn", updated_at=func.now())
            .returning(v.c.volunteer_id)
        )
        return result.first() is not None

    async def upsert_case(self, session: AsyncSession, snapshot: CaseSnapshot, at: datetime) -> bool:
        """A case opened or updated; returns False if the case is closed (nothing changes)."""
        c = self.t.cases
        values = {
            "case_id": snapshot.case_id,
            "status": "open",
            "facts": snapshot.model_dump(mode="json", exclude={"changes"}),
            "facility_code": snapshot.facility_code,
            "next_hearing_date": snapshot.next_hearing_date,
            "opened_at": at,
        }
        statement = insert(c).values(values)
        upsert = statement.on_conflict_do_update(
            index_elements=["case_id"],
            set_={
                "facts": statement.excluded.facts,
                "facility_code": statement.excluded.facility_code,
                "next_hearing_date": statement.excluded.next_hearing_date,
                "updated_at": func.now(),
            },
            where=c.c.status != "closed",
        ).returning(c.c.case_id)
        return (await session.execute(upsert)).first() is not None

    async def close_case(self, session: AsyncSession, case_id: UUID) -> bool:
        c = self.t.cases
        result = await session.execute(
            update(c)
            .where(c.c.case_id == case_id, c.c.status != "closed")
            .values(status="closed", updated_at=func.now())
            .returning(c.c.case_id)
        )
        return result.first() is not None

    async def set_case_status(self, session: AsyncSession, case_id: UUID, status: str, at: datetime) -> None:
        c = self.t.cases
        values: dict[str, Any] = {"status": status, "updated_at": at}
        if status == "placed":
            values["placed_at"] = at
        await session.execute(update(c).where(c.c.case_id == case_id, c.c.status != "closed").values(values))

    async def set_facility(self, session: AsyncSession, event: FacilityStatusChanged) -> None:
        f = self.t.facilities
        statement = insert(f).values(
            facility_code=event.facility_code,
            paused=event.status.value == "paused",
            reason=event.reason.value if event.reason else None,
            changed_at=event.effective_at,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["facility_code"],
                set_={
                    "paused": statement.excluded.paused,
                    "reason": statement.excluded.reason,
                    "changed_at": statement.excluded.changed_at,
                },
            )
        )

    async def paused_facilities(self, session: AsyncSession) -> set[str]:
        f = self.t.facilities
        return set((await session.execute(select(f.c.facility_code).where(f.c.paused))).scalars())

    # -- the decision queue ----------------------------------------------------------------------

    async def queue(self, session: AsyncSession, case_ids: Sequence[UUID], *, after_s: float = 0) -> None:
        """Ask the decision loops to (re)consider these cases once this transaction commits (and
        ``after_s`` seconds have passed: a case skipped because someone else held it)."""
        if not case_ids:
            return
        batched = session.info.get(QUEUE_BUFFER)
        if batched is not None and not after_s:
            batched.update(case_ids)  # the consumer queues its whole batch at the end, in one statement
            return
        q = self.t.pending
        due = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, after_s) if after_s else func.now()
        queued = (
            # In key order: two transactions queueing overlapping cases then never deadlock.
            insert(q)
            .values([{"case_id": case_id, "due_at": due} for case_id in sorted(set(case_ids))])
            .on_conflict_do_nothing()
        )
        if after_s:
            await session.execute(queued)
        else:  # the insert and the NOTIFY in one round trip (a CTE that modifies runs unreferenced)
            await session.execute(select(func.pg_notify(self.pending_channel, "")).add_cte(queued.cte()))

    @contextlib.asynccontextmanager
    async def queueing_once(self, session: AsyncSession) -> AsyncIterator[None]:
        """Within the block, :meth:`queue` collects; at its end everything is queued in one sorted
        statement. Two consumer batches that queued case by case (and then their waiting cases)
        took the queue's keys in different orders and deadlocked (19 times in one ``make chaos``
        run, a rolled-back batch of 500 records each)."""
        buffer: set[UUID] = set()
        session.info[QUEUE_BUFFER] = buffer
        try:
            yield
        finally:
            del session.info[QUEUE_BUFFER]
        await self.queue(session, sorted(buffer))

    async def queue_waiting(self, session: AsyncSession, limit: int = 50) -> None:
        """New volunteers or freed capacity: the most urgent open cases without an offer."""
        c, p = self.t.cases, self.t.proposals
        waiting = (
            select(c.c.case_id)
            .where(c.c.status == "open")
            .where(~select(p.c.proposal_id).where(p.c.case_id == c.c.case_id, p.c.status == "open").exists())
            .order_by(c.c.next_hearing_date.asc().nulls_last(), c.c.opened_at)
            .limit(limit)
        )
        # Chosen by urgency, inserted in key order through queue(): an INSERT ... SELECT in urgency
        # order deadlocked with another instance queueing the same cases (seen under `make chaos`).
        await self.queue(session, list((await session.execute(waiting)).scalars()))

    async def claim_many(self, session: AsyncSession, limit: int) -> list[UUID]:
        """Take up to ``limit`` due cases off the queue (another instance skips them)."""
        q = self.t.pending
        # Materialised: as a plain IN (subquery) the planner may run the LIMIT ... SKIP LOCKED
        # subquery more than once and delete far more than ``limit`` rows (468 seen for 16).
        due = (
            select(q.c.case_id)
            .where(q.c.due_at <= func.now())
            .order_by(q.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
            .prefix_with("MATERIALIZED")
        )
        result = await session.execute(
            delete(q).where(q.c.case_id.in_(select(due.c.case_id))).returning(q.c.case_id)
        )
        return list(result.scalars())

    async def lock_cases(self, session: AsyncSession, case_ids: Sequence[UUID]) -> list[RowMapping]:
        """The cases' rows, locked, with ``paused``; a case someone else holds (the consumer, an
        answer, the global pass) is skipped rather than waited for, and so is one matching does not
        know: a decision never waits on a lock, so decision batches never deadlock."""
        c = self.t.cases
        query = (
            select(c, self._paused())
            .where(c.c.case_id.in_(list(case_ids)))
            .order_by(c.c.case_id)
            .with_for_update(of=c, skip_locked=True)
        )
        return list((await session.execute(query)).mappings())

    async def not_queued(self, session: AsyncSession, case_ids: Sequence[UUID]) -> list[UUID]:
        """Those of ``case_ids`` not in the decision queue already (queueing them again would only
        wait on whoever is queueing or claiming them now)."""
        q = self.t.pending
        queued = set((await session.execute(select(q.c.case_id).where(q.c.case_id.in_(case_ids)))).scalars())
        return [case_id for case_id in case_ids if case_id not in queued]

    async def known(self, session: AsyncSession, case_ids: set[UUID]) -> set[UUID]:
        """Those of ``case_ids`` matching has a row for (locked by someone or not)."""
        if not case_ids:
            return set()
        c = self.t.cases
        return set((await session.execute(select(c.c.case_id).where(c.c.case_id.in_(case_ids)))).scalars())

    async def postpone(self, session: AsyncSession, case_id: UUID, seconds: float, max_attempts: int) -> bool:
        """A case whose decision failed comes back later; False once it has failed too often."""
        q = self.t.pending
        statement = insert(q).values(
            case_id=case_id, due_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, seconds), attempts=1
        )
        statement = statement.on_conflict_do_update(
            index_elements=["case_id"],
            set_={"due_at": statement.excluded.due_at, "attempts": q.c.attempts + 1},
        )
        attempts = (await session.execute(statement.returning(q.c.attempts))).scalar_one()
        if attempts > max_attempts:
            await session.execute(delete(q).where(q.c.case_id == case_id))
            return False
        return True

    # -- reads ----------------------------------------------------------------------------------

    async def lock_case(self, session: AsyncSession, case_id: UUID) -> RowMapping | None:
        """The case row, locked: decisions about one case are made one at a time. ``paused`` says
        whether placements at its facility are paused."""
        c = self.t.cases
        query = select(c, self._paused()).where(c.c.case_id == case_id).with_for_update(of=c)
        return (await session.execute(query)).mappings().first()

    def _paused(self) -> Any:
        c, f = self.t.cases, self.t.facilities
        return (
            select(f.c.paused)
            .where(f.c.facility_code == c.c.facility_code, f.c.paused)
            .exists()
            .label("paused")
        )

    async def funnel(
        self,
        session: AsyncSession,
        *,
        role: VolunteerRole,
        facility_code: str,
        languages: Sequence[str] | None,
    ) -> dict[str, int]:
        """How many active volunteers pass each prefilter step in turn: what an escalation says is
        missing (nobody in the role, nobody speaking the language, nobody reaching, nobody with room)."""
        v = self.t.volunteers
        in_role = and_(v.c.status == "active", v.c.roles.contains([role.value]))
        speaks = v.c.languages.overlap(list(languages)) if languages is not None else true()
        reaches = or_(v.c.remote, v.c.facilities_reachable.contains([facility_code]))
        room = v.c.active_cases + v.c.reserved < v.c.max_active_cases
        query = select(
            func.count().filter(in_role),
            func.count().filter(and_(in_role, speaks)),
            func.count().filter(and_(in_role, speaks, reaches)),
            func.count().filter(and_(in_role, speaks, reaches, room)),
        )
        row = (await session.execute(query)).one()
        return dict(zip(("role", "language", "reach", "room"), row, strict=True))

    async def history(self, session: AsyncSession, case_id: UUID) -> CaseHistory:
        """The case's active matches, proposals and declines in one round trip."""
        return (await self.histories(session, [case_id]))[case_id]

    async def histories(self, session: AsyncSession, case_ids: Sequence[UUID]) -> dict[UUID, CaseHistory]:
        """Each case's active matches, proposals and declines, in one round trip."""
        m, p, d = self.t.matches, self.t.proposals, self.t.declines
        ids = list(case_ids)
        query = union_all(
            select(literal("match").label("kind"), m.c.case_id, m.c.role, m.c.volunteer_id, m.c.status).where(
                m.c.case_id.in_(ids), m.c.status == "active"
            ),
            select(literal("proposal"), p.c.case_id, p.c.role, p.c.volunteer_id, p.c.status).where(
                p.c.case_id.in_(ids)
            ),
            select(literal("decline"), d.c.case_id, literal(None), d.c.volunteer_id, literal(None)).where(
                d.c.case_id.in_(ids)
            ),
        )
        histories = {case_id: CaseHistory() for case_id in ids}
        for row in (await session.execute(query)).mappings():
            history = histories[row["case_id"]]
            if row["kind"] == "match":
                history.matched.add(VolunteerRole(row["role"]))
            elif row["kind"] == "decline":
                history.declined.add(row["volunteer_id"])
            else:
                history.proposals.append((VolunteerRole(row["role"]), row["volunteer_id"], row["status"]))
        return histories

    async def declined_by(self, session: AsyncSession, case_id: UUID) -> set[UUID]:
        d = self.t.declines
        return set((await session.execute(select(d.c.volunteer_id).where(d.c.case_id == case_id))).scalars())

    async def open_proposals(
        self, session: AsyncSession, case_id: UUID, role: VolunteerRole | None = None
    ) -> list[RowMapping]:
        p = self.t.proposals
        query = select(p).where(p.c.case_id == case_id, p.c.status == "open")
        if role is not None:
            query = query.where(p.c.role == role.value)
        return list((await session.execute(query)).mappings())

    async def attempts(self, session: AsyncSession, case_id: UUID, role: VolunteerRole) -> int:
        """Proposals made so far for the case and role."""
        p = self.t.proposals
        query = select(func.count()).where(p.c.case_id == case_id, p.c.role == role.value)
        return int((await session.execute(query)).scalar_one())

    async def proposal_counts(
        self, session: AsyncSession, case_id: UUID, role: VolunteerRole
    ) -> dict[str, int]:
        p = self.t.proposals
        query = (
            select(p.c.status, func.count())
            .where(p.c.case_id == case_id, p.c.role == role.value)
            .group_by(p.c.status)
        )
        return dict((await session.execute(query)).all())

    async def active_match(
        self, session: AsyncSession, case_id: UUID, role: VolunteerRole
    ) -> RowMapping | None:
        m = self.t.matches
        query = select(m).where(m.c.case_id == case_id, m.c.role == role.value, m.c.status == "active")
        return (await session.execute(query)).mappings().first()

    # -- capacity -------------------------------------------------------------------------------

    async def reserve(self, session: AsyncSession, volunteer_id: UUID) -> bool:
        """Hold a place for a proposal; False when the volunteer is full or gone (the guard that
        makes overbooking impossible: Postgres re-checks the condition on the locked row)."""
        v = self.t.volunteers
        result = await session.execute(
            update(v)
            .where(
                v.c.volunteer_id == volunteer_id,
                v.c.status == "active",
                v.c.active_cases + v.c.reserved < v.c.max_active_cases,
            )
            .values(reserved=v.c.reserved + 1)
            .returning(v.c.volunteer_id)
        )
        return result.first() is not None

    async def reserve_and_insert(self, session: AsyncSession, proposal: dict[str, Any]) -> bool:
        """:meth:`reserve` and insert the open ``proposal`` (a row of ``proposals``) in one statement;
        False, and nothing inserted, when the volunteer is full or gone, or when another transaction
        holds their row: a decision batch holds the rows it reserved until it commits, and two
        batches waiting for each other's volunteers deadlocked (PostgreSQL broke each after a second),
        so a decision takes the next candidate instead of waiting."""
        v, p = self.t.volunteers, self.t.proposals
        free = (
            select(v.c.volunteer_id)
            .where(v.c.volunteer_id == proposal["volunteer_id"])
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        reserved = (
            update(v)
            .where(
                v.c.volunteer_id == free,
                v.c.status == "active",
                v.c.active_cases + v.c.reserved < v.c.max_active_cases,
            )
            .values(reserved=v.c.reserved + 1)
            .returning(v.c.volunteer_id)
            .cte("reserved")
        )
        row = select(
            *(
                reserved.c.volunteer_id
                if name == "volunteer_id"
                else literal(value, p.c[name].type).label(name)
                for name, value in proposal.items()
            )
        )
        result = await session.execute(insert(p).from_select(list(proposal), row).returning(p.c.proposal_id))
        return result.first() is not None

    async def release(self, session: AsyncSession, volunteer_id: UUID) -> None:
        """A proposal ended unanswered or declined: its place is free again."""
        v = self.t.volunteers
        await session.execute(
            update(v)
            .where(v.c.volunteer_id == volunteer_id, v.c.reserved > 0)
            .values(reserved=v.c.reserved - 1)
        )

    async def activate(self, session: AsyncSession, volunteer_id: UUID) -> None:
        """An accepted proposal: its reserved place becomes an active case."""
        v = self.t.volunteers
        await session.execute(
            update(v)
            .where(v.c.volunteer_id == volunteer_id)
            .values(reserved=v.c.reserved - 1, active_cases=v.c.active_cases + 1)
        )

    async def finish(self, session: AsyncSession, volunteer_id: UUID) -> None:
        """A match ended: one active case fewer."""
        v = self.t.volunteers
        await session.execute(
            update(v)
            .where(v.c.volunteer_id == volunteer_id, v.c.active_cases > 0)
            .values(active_cases=v.c.active_cases - 1)
        )

    async def reserve_mentor(self, session: AsyncSession, *, exclude: UUID) -> UUID | None:
        """The least-loaded mentor with room takes one more mentee (guarded like ``reserve``)."""
        v, capacity = self.t.volunteers, self.mentor_capacity
        pick = (
            select(v.c.volunteer_id)
            .where(
                v.c.can_mentor, v.c.status == "active", v.c.mentees < capacity, v.c.volunteer_id != exclude
            )
            .order_by(v.c.mentees, v.c.volunteer_id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        result = await session.execute(
            update(v)
            .where(v.c.volunteer_id == pick, v.c.mentees < capacity)
            .values(mentees=v.c.mentees + 1)
            .returning(v.c.volunteer_id)
        )
        mentor: UUID | None = result.scalar_one_or_none()
        return mentor

    async def mentor_available(self, session: AsyncSession) -> bool:
        """Whether some mentor has room for one more mentee (novices may then be placed)."""
        v = self.t.volunteers
        query = select(
            select(v.c.volunteer_id)
            .where(v.c.can_mentor, v.c.status == "active", v.c.mentees < self.mentor_capacity)
            .exists()
        )
        return bool((await session.execute(query)).scalar())

    async def release_mentor(self, session: AsyncSession, mentor_id: UUID) -> None:
        v = self.t.volunteers
        await session.execute(
            update(v).where(v.c.volunteer_id == mentor_id, v.c.mentees > 0).values(mentees=v.c.mentees - 1)
        )

    async def record_decline(
        self, session: AsyncSession, case_id: UUID, volunteer_id: UUID, reason: DeclineReason
    ) -> None:
        """This volunteer is not offered this case again."""
        d = self.t.declines
        await session.execute(
            insert(d)
            .values(case_id=case_id, volunteer_id=volunteer_id, reason=reason.value)
            .on_conflict_do_nothing()
        )

    async def expiring(self, session: AsyncSession, now: datetime, limit: int = 200) -> list[RowMapping]:
        """Open proposals past their time, locked and skipped by other instances doing the same."""
        p = self.t.proposals
        query = (
            select(p)
            .where(p.c.status == "open", p.c.expires_at <= now)
            .order_by(p.c.expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.execute(query)).mappings())

    async def open_cases_due(self, session: AsyncSession, until: date, limit: int = 500) -> list[RowMapping]:
        c = self.t.cases
        query = (
            select(c)
            .where(c.c.status == "open", c.c.next_hearing_date <= until)
            .order_by(c.c.next_hearing_date)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await session.execute(query)).mappings())
