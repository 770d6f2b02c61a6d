"""From events to partial rows of the read models, folded per key, written with one statement per table.

The live consumers and the rebuild share this code: both decode records into envelopes, fold a batch
into a :class:`Batch` and :func:`write` it to a generation's tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from lastline_reporting import readmodel as rm
from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.cases import CaseClosed, CaseOpened, CaseSnapshot, CaseUpdated
from lastline_shared.contracts.enums import VolunteerRole
from lastline_shared.contracts.envelope import Envelope
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
from lastline_shared.contracts.notifications import NotificationFailed, NotificationSent
from lastline_shared.contracts.rejections import SubmissionRejected
from lastline_shared.contracts.volunteers import (
    VolunteerProfile,
    VolunteerRegistered,
    VolunteerUpdated,
    VolunteerWithdrawn,
)

COUNSEL_ROLES = frozenset({VolunteerRole.ATTORNEY, VolunteerRole.ACCREDITED_REPRESENTATIVE})
"""Roles that represent a client before the court: a case with such a match has counsel."""


class Batch:
    """Partial rows per table and key, merged as they are added."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[Any, rm.Row]] = {spec.name: {} for spec in rm.TABLES}
        self.events = 0

    def put(self, spec: rm.TableSpec, row: rm.Row) -> None:
        rows = self.rows[spec.name]
        key = row[spec.key]
        old = rows.get(key)
        if old is None:
            rows[key] = row
        else:
            rm.merge(spec, old, row)

    def add(self, envelope: Envelope) -> None:
        self.add_event(envelope.data, envelope.time, uuid.UUID(envelope.id))

    def add_event(self, data: Contract, at: datetime, event_id: uuid.UUID) -> None:
        project = _PROJECTIONS.get(type(data))
        self.events += 1
        if project is not None:
            project(self, data, at, event_id)

    def project(self, project: Projection, data: Any, at: datetime, event_id: uuid.UUID) -> None:
        """An event given as anything with its contract's attributes (the rebuild's slim structs)."""
        project(self, data, at, event_id)
        self.events += 1

    def extend(self, envelopes: Iterable[Envelope]) -> Batch:
        for envelope in envelopes:
            self.add(envelope)
        return self

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())


# --- one function per event type ------------------------------------------------------------------


def _case_facts(batch: Batch, data: CaseSnapshot, at: datetime, event_id: uuid.UUID) -> None:
    partners = list(dict.fromkeys(ref.partner_id for ref in data.referrals))
    batch.put(
        rm.CASES,
        {
            "case_id": data.case_id,
            "opened_at": at,
            "facts_at": at,
            "facts_event": event_id,
            "facility_code": data.facility_code,
            "court_code": data.court_code,
            "case_type": data.case_type,
            "language": data.languages[0],
            "partners": partners,
            "next_hearing_date": data.next_hearing_date,
        },
    )


def _case_closed(batch: Batch, data: CaseClosed, at: datetime, event_id: uuid.UUID) -> None:
    batch.put(
        rm.CASES,
        {"case_id": data.case_id, "closed_at": at, "closed_event": event_id, "outcome": data.outcome},
    )


def _proposal(data: MatchProposed | MatchAccepted | MatchDeclined | MatchExpired | MatchRetracted) -> rm.Row:
    return {
        "proposal_id": data.proposal_id,
        "case_id": data.case_id,
        "volunteer_id": data.volunteer_id,
        "role": data.role,
    }


def _proposed(batch: Batch, data: MatchProposed, at: datetime, _event_id: uuid.UUID) -> None:
    batch.put(rm.PROPOSALS, _proposal(data) | {"proposed_at": at})
    batch.put(rm.CASES, {"case_id": data.case_id, "first_proposed_at": at})


def _accepted(batch: Batch, data: MatchAccepted, at: datetime, _event_id: uuid.UUID) -> None:
    batch.put(rm.PROPOSALS, _proposal(data) | {"accepted_at": at})


def _declined(batch: Batch, data: MatchDeclined, at: datetime, event_id: uuid.UUID) -> None:
    row = {"declined_at": at, "declined_event": event_id, "decline_reason": data.reason}
    batch.put(rm.PROPOSALS, _proposal(data) | row)


def _expired(batch: Batch, data: MatchExpired, at: datetime, _event_id: uuid.UUID) -> None:
    batch.put(rm.PROPOSALS, _proposal(data) | {"expired_at": at})


def _retracted(batch: Batch, data: MatchRetracted, at: datetime, event_id: uuid.UUID) -> None:
    row = {"retracted_at": at, "retracted_event": event_id, "retraction_reason": data.reason}
    batch.put(rm.PROPOSALS, _proposal(data) | row)


def _match(data: MatchMade | MatchEnded) -> rm.Row:
    return {
        "match_id": data.match_id,
        "case_id": data.case_id,
        "volunteer_id": data.volunteer_id,
        "role": data.role,
    }


def _made(batch: Batch, data: MatchMade, at: datetime, _event_id: uuid.UUID) -> None:
    batch.put(rm.MATCHES, _match(data) | {"made_at": at, "overridden": data.overridden_by is not None})
    if data.role in COUNSEL_ROLES:
        batch.put(rm.CASES, {"case_id": data.case_id, "placed_at": at})


def _ended(batch: Batch, data: MatchEnded, at: datetime, event_id: uuid.UUID) -> None:
    row = {"ended_at": at, "ended_event": event_id, "end_reason": data.reason}
    batch.put(rm.MATCHES, _match(data) | row)


def _mentor(batch: Batch, data: MentorAssigned, at: datetime, event_id: uuid.UUID) -> None:
    batch.put(
        rm.MENTOR_PAIRS,
        {
            "match_id": data.match_id,
            "case_id": data.case_id,
            "assigned_at": at,
            "assigned_event": event_id,
            "mentor_id": data.mentor_id,
            "mentee_id": data.mentee_id,
        },
    )


def _escalated(batch: Batch, data: CaseEscalated, at: datetime, event_id: uuid.UUID) -> None:
    batch.put(
        rm.ESCALATIONS,
        {
            "event_id": event_id,
            "case_id": data.case_id,
            "escalated_at": at,
            "level": int(data.level),
            "facility_code": data.facility_code,
            "causes": list(data.causes),
        },
    )


def _volunteer(batch: Batch, data: VolunteerProfile, at: datetime, event_id: uuid.UUID) -> None:
    batch.put(
        rm.VOLUNTEERS,
        {
            "volunteer_id": data.volunteer_id,
            "registered_at": at,
            "profile_at": at,
            "profile_event": event_id,
            "partner_id": data.registered_by.partner_id if data.registered_by else None,
            "roles": list(data.roles),
            "languages": list(data.languages),
            "experience": data.experience_level,
            "max_active_cases": data.max_active_cases,
            "status_at": at,
            "status_event": event_id,
            "status": "active",
            "withdrawal_reason": None,
        },
    )


def _withdrawn(batch: Batch, data: VolunteerWithdrawn, at: datetime, event_id: uuid.UUID) -> None:
    batch.put(
        rm.VOLUNTEERS,
        {
            "volunteer_id": data.volunteer_id,
            "status_at": at,
            "status_event": event_id,
            "status": "withdrawn",
            "withdrawal_reason": data.reason,
        },
    )


def _delivery(data: NotificationSent | NotificationFailed, at: datetime) -> rm.Row:
    return {
        "notification_id": data.notification_id,
        "channel": data.channel,
        "template": data.template,
        "recipient_kind": data.recipient_kind,
        "first_at": at,
        "attempts": data.attempt,
    }


def _sent(batch: Batch, data: NotificationSent, at: datetime, _event_id: uuid.UUID) -> None:
    batch.put(rm.NOTIFICATIONS, _delivery(data, at) | {"sent_at": at})


def _failed(batch: Batch, data: NotificationFailed, at: datetime, event_id: uuid.UUID) -> None:
    row = {"failed_at": at, "failed_event": event_id, "failure": data.failure, "will_retry": data.will_retry}
    batch.put(rm.NOTIFICATIONS, _delivery(data, at) | row)


def _rejected(batch: Batch, data: SubmissionRejected, at: datetime, _event_id: uuid.UUID) -> None:
    batch.put(
        rm.REJECTIONS,
        {
            "submission_id": data.submission_id,
            "partner_id": data.partner_id,
            "submission_type": data.submission_type,
            "rejected_at": at,
            "codes": sorted({reason.code for reason in data.reasons}),
        },
    )


def _facility(batch: Batch, data: FacilityStatusChanged, _at: datetime, event_id: uuid.UUID) -> None:
    batch.put(
        rm.FACILITIES,
        {
            "facility_code": data.facility_code,
            "status_at": data.effective_at,
            "status_event": event_id,
            "status": data.status,
            "reason": data.reason,
            "note": data.note,
        },
    )


Projection = Callable[[Batch, Any, datetime, uuid.UUID], None]

_PROJECTIONS: dict[type[Contract], Projection] = {
    CaseOpened: _case_facts,
    CaseUpdated: _case_facts,
    CaseClosed: _case_closed,
    MatchProposed: _proposed,
    MatchAccepted: _accepted,
    MatchDeclined: _declined,
    MatchExpired: _expired,
    MatchRetracted: _retracted,
    MatchMade: _made,
    MatchEnded: _ended,
    MentorAssigned: _mentor,
    CaseEscalated: _escalated,
    VolunteerRegistered: _volunteer,
    VolunteerUpdated: _volunteer,
    VolunteerWithdrawn: _withdrawn,
    NotificationSent: _sent,
    NotificationFailed: _failed,
    SubmissionRejected: _rejected,
    FacilityStatusChanged: _facility,
}


def projection_for(event_type: str) -> Projection:
    """The projection of the contract with this CloudEvents ``type``."""
    return next(project for model, project in _PROJECTIONS.items() if model.event_type == event_type)


# --- writing --------------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _upsert(spec_name: str, schema: str, generation: int) -> TextClause:
    return text(rm.BY_NAME[spec_name].upsert_sql(schema, generation))


async def write(db: AsyncSession | AsyncConnection, schema: str, generation: int, batch: Batch) -> None:
    """One upsert per table that has rows, in the caller's transaction."""
    for spec in rm.TABLES:
        rows = batch.rows[spec.name]
        if rows:
            payload = orjson.dumps(list(rows.values())).decode()
            await db.execute(_upsert(spec.name, schema, generation), {"rows": payload})
