"""Staff pause and reopen placements at a detention facility (phones cut, visits suspended, lockdown).

The current status of each facility is kept in ``facility_status`` (a facility without a row is
open); a change is published as ``facility-status-changed`` on ``facilities`` through the outbox, in
the transaction that stores it, so matching stops (or resumes) proposing cases there. Saying again
what is already the case publishes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import CheckConstraint, Column, DateTime, MetaData, Table, Text, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_intake import reference
from lastline_intake.rules import SUGGESTIONS
from lastline_shared.auth import Principal, require_role
from lastline_shared.contracts.enums import FacilityPauseReason, FacilityStatus
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.logging import get_logger
from lastline_shared.ops import ProblemError
from lastline_shared.runtime import ServiceRuntime

log = get_logger(__name__)

Emit = Callable[[AsyncSession, Iterable[Any]], Awaitable[int]]
"""``ServiceRuntime.emit``: events into the outbox, in the caller's transaction."""


def facility_status_table(metadata: MetaData) -> Table:
    return Table(
        "facility_status",
        metadata,
        Column("facility_code", Text, primary_key=True),
        Column("status", Text, nullable=False),
        Column("reason", Text, nullable=True),
        Column("note", Text, nullable=True),
        Column("changed_by", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        CheckConstraint("status IN ('open', 'paused')", name="status"),
        CheckConstraint("status = 'open' OR reason IS NOT NULL", name="paused_has_reason"),
    )


class StatusBody(BaseModel):
    """The status staff set."""

    model_config = ConfigDict(extra="forbid")

    status: FacilityStatus
    reason: FacilityPauseReason | None = Field(default=None, description="Why; required when pausing")
    note: str | None = Field(
        default=None, max_length=4000, description="Staff's explanation; never client details"
    )

    @field_validator("note")
    @classmethod
    def _blank_is_none(cls, note: str | None) -> str | None:
        return note.strip() or None if note is not None else None

    @model_validator(mode="after")
    def _reason_only_when_paused(self) -> Self:
        if self.status is FacilityStatus.PAUSED and self.reason is None:
            raise ValueError("a paused facility needs a reason")
        if self.status is FacilityStatus.OPEN and self.reason is not None:
            raise ValueError("a reason is given only when pausing")
        return self


@dataclass(frozen=True, slots=True)
class Status:
    facility_code: str
    status: FacilityStatus
    reason: FacilityPauseReason | None = None
    note: str | None = None
    changed_by: str | None = None
    changed_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "reason": self.reason.value if self.reason else None,
            "note": self.note,
            "changed_by": self.changed_by,
            "changed_at": self.changed_at.isoformat() if self.changed_at else None,
        }


def _status(row: Any) -> Status:
    return Status(
        facility_code=row["facility_code"],
        status=FacilityStatus(row["status"]),
        reason=FacilityPauseReason(row["reason"]) if row["reason"] else None,
        note=row["note"],
        changed_by=row["changed_by"],
        changed_at=row["changed_at"],
    )


class FacilityStatuses:
    """Facility statuses in intake's schema; every method runs in the caller's transaction."""

    def __init__(self, metadata: MetaData, emit: Emit) -> None:
        self.table = facility_status_table(metadata)
        self._emit = emit

    async def current(self, session: AsyncSession) -> dict[str, Status]:
        rows = await session.execute(select(self.table))
        return {row["facility_code"]: _status(row) for row in rows.mappings()}

    async def set(
        self, session: AsyncSession, facility_code: str, body: StatusBody, *, by: str, now: datetime
    ) -> tuple[Status, bool]:
        """Store the status; publish ``facility-status-changed`` if the status or the reason changed.

        Returns the stored status and whether it changed. Concurrent changes of one facility are
        serialised (a transaction-scoped advisory lock), so each real change is published once.
        """
        t = self.table
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"facility-status:{facility_code}"}
        )
        row = (await session.execute(select(t).where(t.c.facility_code == facility_code))).mappings().first()
        before = _status(row) if row else Status(facility_code, FacilityStatus.OPEN)
        changed = (before.status, before.reason) != (body.status, body.reason)
        if not changed and before.note == body.note:
            return before, False
        if row is not None and not changed:  # a new note alone: stored, not published
            statement: Any = update(t).where(t.c.facility_code == facility_code).values(note=body.note)
        else:
            values = {
                "status": body.status.value,
                "reason": body.reason.value if body.reason else None,
                "note": body.note,
                "changed_by": by,
                "changed_at": now,
            }
            statement = (
                insert(t)
                .values(facility_code=facility_code, **values)
                .on_conflict_do_update(index_elements=["facility_code"], set_=values)
            )
        stored = (await session.execute(statement.returning(t))).mappings().one()
        if changed:
            event = FacilityStatusChanged(
                facility_code=facility_code,
                status=body.status,
                reason=body.reason,
                note=body.note,
                effective_at=now,
                changed_by=by[:200],
            )
            await self._emit(session, [event])
        return _status(stored), changed


def _facility_json(facility: reference.Facility | None, code: str, status: Status | None) -> dict[str, Any]:
    place = (
        {"name": facility.name, "city": facility.city, "state": facility.state, "court": facility.court}
        if facility is not None
        else {"name": None, "city": None, "state": None, "court": None}
    )
    current = status or Status(code, FacilityStatus.OPEN)
    return {"code": code, "known": facility is not None, **place, **current.as_json()}


def _known(facility_code: str) -> reference.Facility:
    facility = reference.facility(facility_code)
    if facility is None:
        nearest = reference.suggest_facilities(facility_code, SUGGESTIONS)
        labels = "; ".join(f.label() for f in nearest)
        raise ProblemError(404, "Unknown facility", f"No facility has this code; nearest known: {labels}")
    return facility


def build_router(*, sessions: async_sessionmaker[AsyncSession], statuses: FacilityStatuses) -> APIRouter:
    router = APIRouter(prefix="/v1/facilities", tags=["staff: facilities"])

    @router.get("", summary="Every known facility with its placement status (staff)")
    async def list_facilities(
        _: Annotated[Principal, Depends(require_role("staff"))],
        status: Annotated[
            FacilityStatus | None, Query(description="Only facilities with this status")
        ] = None,
    ) -> dict[str, Any]:
        async with sessions() as session:
            current = await statuses.current(session)
        known = {f.code: f for f in reference.all_facilities()}
        # Facilities dropped from the reference data while paused are still listed.
        codes = sorted(known.keys() | current.keys())
        listed = [_facility_json(known.get(code), code, current.get(code)) for code in codes]
        if status is not None:
            listed = [f for f in listed if f["status"] == status.value]
        return {"facilities": listed}

    @router.put(
        "/{facility_code}/status",
        summary="Pause or reopen placements at a facility (admin)",
        responses={404: {"description": "Unknown facility code; the detail suggests the nearest known"}},
    )
    async def set_status(
        facility_code: str,
        body: StatusBody,
        principal: Annotated[Principal, Depends(require_role("admin"))],
    ) -> dict[str, Any]:
        facility = _known(facility_code)
        async with sessions.begin() as session:
            stored, changed = await statuses.set(
                session, facility.code, body, by=principal.subject, now=datetime.now(UTC)
            )
        if changed:
            log.info(
                "facility status changed",
                facility_code=facility.code,
                status=stored.status.value,
                reason=stored.reason.value if stored.reason else None,
                by=principal.subject,
            )
        return _facility_json(facility, facility.code, stored) | {"changed": changed}

    return router


def register(runtime: ServiceRuntime) -> FacilityStatuses:
    """The table on the service's metadata, the endpoints on its app, events through its outbox."""
    statuses = FacilityStatuses(runtime.metadata, runtime.emit)
    runtime.routers.append(build_router(sessions=runtime.sessions, statuses=statuses))
    return statuses
