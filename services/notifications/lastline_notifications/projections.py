"""What notifications keeps of the ``volunteers``, ``cases`` and ``matches`` streams.

Contacts come from here and never from another service's tables. Each row remembers the time of the
event it reflects, so a replayed older event never overwrites a newer one. A case's events serialise
with the ``matches`` events held for it through an advisory lock on the case (see ``lock_cases``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_notifications.tables import NotificationsTables
from lastline_shared.contracts.cases import CaseClosed, CaseSnapshot
from lastline_shared.contracts.matches import MatchEnded, MatchMade, MentorAssigned
from lastline_shared.contracts.volunteers import VolunteerProfile, VolunteerWithdrawn

# Advisory lock namespace for "this case's projection and held events" (see lock_cases).
_CASE_LOCK_NAMESPACE = 0x0C0E


@dataclass(frozen=True, slots=True)
class Contact:
    volunteer_id: UUID
    name: str
    email: str
    language: str
    status: str


@dataclass(frozen=True, slots=True)
class Referral:
    partner_id: str
    external_id: str


@dataclass(frozen=True, slots=True)
class CaseSummary:
    """What a volunteer or partner may be told about a case: no client PII exists here."""

    case_id: UUID
    status: str
    facility_code: str
    court_code: str
    case_type: str
    languages: tuple[str, ...]
    next_hearing_date: date | None
    referrals: tuple[Referral, ...]

    def external_id(self, partner_id: str) -> str | None:
        """The partner's own id for the case, if it referred it."""
        return next((r.external_id for r in self.referrals if r.partner_id == partner_id), None)


class Projections:
    def __init__(self, tables: NotificationsTables) -> None:
        self.t = tables
        v, c = tables.volunteers, tables.cases
        # Upserts that never let an older event overwrite a newer one (replays, redeliveries).
        volunteer = insert(v)
        self._upsert_volunteer = volunteer.on_conflict_do_update(
            index_elements=[v.c.volunteer_id],
            set_={
                name: volunteer.excluded[name]
                for name in ("name", "email", "language", "status", "event_time")
            },
            where=v.c.event_time <= volunteer.excluded.event_time,
        )
        case = insert(c)
        self._upsert_case = case.on_conflict_do_update(
            index_elements=[c.c.case_id],
            set_={
                name: case.excluded[name]
                for name in (
                    "facility_code",
                    "court_code",
                    "case_type",
                    "languages",
                    "next_hearing_date",
                    "referrals",
                    "event_time",
                )
            },
            where=c.c.event_time <= case.excluded.event_time,
        )

    # -- volunteers -----------------------------------------------------------------------------

    async def on_volunteers(self, session: AsyncSession, events: Sequence[tuple[object, datetime]]) -> None:
        """Apply ``(event, time)`` pairs in order: one statement per run of the same kind of event
        (executemany keeps each row's own effect, in order), not one per event."""
        v = self.t.volunteers
        for kind, run in _runs(events, (VolunteerProfile, VolunteerWithdrawn)):
            if kind is VolunteerProfile:
                await session.execute(
                    self._upsert_volunteer,
                    [
                        {
                            "volunteer_id": event.volunteer_id,
                            "name": event.name,
                            "email": event.email,
                            "language": event.languages[0],
                            "status": "active",
                            "event_time": at,
                        }
                        for event, at in _typed(run, VolunteerProfile)
                    ],
                )
            else:
                await session.execute(
                    update(v)
                    .where(v.c.volunteer_id == bindparam("b_id"), v.c.event_time <= bindparam("b_at"))
                    .values(status="withdrawn", event_time=bindparam("b_at")),
                    [
                        {"b_id": event.volunteer_id, "b_at": at}
                        for event, at in _typed(run, VolunteerWithdrawn)
                    ],
                )

    async def on_volunteer(self, session: AsyncSession, event: object, at: datetime) -> None:
        await self.on_volunteers(session, [(event, at)])

    async def contacts(self, session: AsyncSession, ids: Iterable[UUID]) -> dict[UUID, Contact]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        v = self.t.volunteers
        rows = await session.execute(
            select(v.c.volunteer_id, v.c.name, v.c.email, v.c.language, v.c.status).where(
                v.c.volunteer_id.in_(wanted)
            )
        )
        return {row.volunteer_id: Contact(*row) for row in rows}

    # -- cases ----------------------------------------------------------------------------------

    async def lock_cases(self, session: AsyncSession, case_ids: Iterable[UUID]) -> None:
        """Serialise with whoever holds or releases events for these cases (until commit).

        Taken in a stable order, so two transactions locking overlapping sets cannot deadlock.
        """
        keys = [{"ns": _CASE_LOCK_NAMESPACE, "key": str(case_id)} for case_id in sorted(set(case_ids))]
        if keys:  # executemany: one round trip, the locks still taken one after another in order
            await session.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))"), keys)

    async def on_cases(self, session: AsyncSession, events: Sequence[tuple[object, datetime]]) -> None:
        """Apply ``(event, time)`` pairs in order, a statement per run of the same kind of event."""
        c = self.t.cases
        for kind, run in _runs(events, (CaseSnapshot, CaseClosed)):
            if kind is CaseSnapshot:
                await session.execute(
                    self._upsert_case,
                    [
                        {
                            "case_id": event.case_id,
                            "status": "open",
                            "facility_code": event.facility_code,
                            "court_code": event.court_code,
                            "case_type": event.case_type.value,
                            "languages": list(event.languages),
                            "next_hearing_date": event.next_hearing_date,
                            "referrals": [r.model_dump(mode="json") for r in event.referrals],
                            "event_time": at,
                        }
                        for event, at in _typed(run, CaseSnapshot)
                    ],
                )
            else:
                await session.execute(
                    update(c)
                    .where(c.c.case_id == bindparam("b_id"), c.c.event_time <= bindparam("b_at"))
                    .values(status="closed"),
                    [{"b_id": event.case_id, "b_at": at} for event, at in _typed(run, CaseClosed)],
                )

    async def on_case(self, session: AsyncSession, event: object, at: datetime) -> None:
        await self.on_cases(session, [(event, at)])

    async def cases(self, session: AsyncSession, ids: Iterable[UUID]) -> dict[UUID, CaseSummary]:
        wanted = list(set(ids))
        if not wanted:
            return {}
        c = self.t.cases
        rows = await session.execute(select(c).where(c.c.case_id.in_(wanted)))
        return {row.case_id: _summary(row) for row in rows}

    # -- placements -----------------------------------------------------------------------------

    async def on_matches(self, session: AsyncSession, events: Sequence[tuple[object, datetime]]) -> None:
        """Apply ``(event, time)`` pairs in order, a statement per run of the same kind of event."""
        p = self.t.placements
        for kind, run in _runs(events, (MatchMade, MatchEnded, MentorAssigned)):
            if kind is MatchMade:
                await session.execute(
                    insert(p).on_conflict_do_nothing(),
                    [
                        {
                            "match_id": event.match_id,
                            "case_id": event.case_id,
                            "volunteer_id": event.volunteer_id,
                            "role": event.role.value,
                            "active": True,
                            "made_at": at,
                        }
                        for event, at in _typed(run, MatchMade)
                    ],
                )
            elif kind is MatchEnded:
                await session.execute(
                    update(p).where(p.c.match_id == bindparam("b_id")).values(active=False),
                    [{"b_id": event.match_id} for event, _ in _typed(run, MatchEnded)],
                )
            else:
                await session.execute(
                    update(p)
                    .where(p.c.match_id == bindparam("b_id"))
                    .values(mentor_id=bindparam("b_mentor")),
                    [
                        {"b_id": event.match_id, "b_mentor": event.mentor_id}
                        for event, _ in _typed(run, MentorAssigned)
                    ],
                )

    async def on_match(self, session: AsyncSession, event: object, at: datetime) -> None:
        await self.on_matches(session, [(event, at)])

    # -- held events ----------------------------------------------------------------------------

    async def hold(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        if rows:
            await session.execute(self.t.held_events.insert(), rows)

    async def release(self, session: AsyncSession, case_ids: Iterable[UUID]) -> list[dict[str, Any]]:
        """The events held for these cases, oldest first, deleted (the caller applies them now)."""
        wanted = list(set(case_ids))
        if not wanted:
            return []
        h = self.t.held_events
        rows = (
            (
                await session.execute(
                    h.delete().where(h.c.case_id.in_(bindparam("ids", expanding=True))).returning(*h.c),
                    {"ids": wanted},
                )
            )
            .mappings()
            .all()
        )
        return sorted((dict(r) for r in rows), key=lambda r: int(r["id"]))


def _summary(row: Any) -> CaseSummary:
    return CaseSummary(
        case_id=row.case_id,
        status=row.status,
        facility_code=row.facility_code,
        court_code=row.court_code,
        case_type=row.case_type,
        languages=tuple(row.languages),
        next_hearing_date=row.next_hearing_date,
        referrals=tuple(Referral(r["partner_id"], r["external_id"]) for r in row.referrals),
    )


T = TypeVar("T")


def _runs(
    events: Sequence[tuple[object, datetime]], kinds: tuple[type, ...]
) -> Iterator[tuple[type, list[tuple[object, datetime]]]]:
    """Consecutive events of the same kind (the first of ``kinds`` each is an instance of), in order;
    events of none of them change nothing and are left out."""
    run: list[tuple[object, datetime]] = []
    current: type | None = None
    for event, at in events:
        kind = next((k for k in kinds if isinstance(event, k)), None)
        if kind is None:
            continue
        if kind is not current and run:
            assert current is not None
            yield current, run
            run = []
        current = kind
        run.append((event, at))
    if run and current is not None:
        yield current, run


def _typed(run: list[tuple[object, datetime]], kind: type[T]) -> Iterator[tuple[T, datetime]]:
    for event, at in run:
        assert isinstance(event, kind)
        yield event, at
