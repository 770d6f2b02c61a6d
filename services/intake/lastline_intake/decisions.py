"""What arrives at intake and what intake decides about it: the same for Kafka and HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from lastline_shared.contracts.envelope import DecodeError, Envelope, Reason

Channel = Literal["kafka", "http"]
Status = Literal["accepted", "held", "rejected"]
Result = Literal["created", "updated", "merged", "unchanged", "closed", "withdrawn", "held"]
RecordKind = Literal["case", "volunteer"]


@dataclass(frozen=True, slots=True)
class Received:
    """One submission as it arrived: decoded, or the error value of a record that did not decode."""

    item: Envelope | DecodeError
    channel: Channel
    received_at: datetime
    partition: int | None = None
    offset: int | None = None

    @property
    def partner_id(self) -> str | None:
        return self.item.partner_id

    @property
    def event_id(self) -> str | None:
        return self.item.id if isinstance(self.item, Envelope) else self.item.event_id

    @property
    def event_type(self) -> str | None:
        return self.item.type if isinstance(self.item, Envelope) else self.item.event_type


@dataclass(frozen=True, slots=True)
class Decision:
    """What became of a submission. ``duplicate``: this copy had no effect; the decision is the first's.

    ``result`` says what the submission did to its record: ``created``; ``merged`` (the same volunteer
    by email, or the same client by A-number, already known: linked, and updated); ``updated``;
    ``unchanged``; ``closed``; ``withdrawn``; ``held`` (an update before its registration, applied
    when the registration arrives).
    """

    submission_id: UUID
    status: Status
    partner_id: str | None = None
    event_id: str | None = None
    event_type: str | None = None
    external_id: str | None = None
    result: Result | None = None
    record_kind: RecordKind | None = None
    record_id: UUID | None = None
    reasons: tuple[Reason, ...] = ()
    duplicate: bool = False
    received_at: datetime | None = None
    decided_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The decision as partners read it (HTTP responses and the status endpoint)."""
        return {
            "submission_id": str(self.submission_id),
            "status": self.status,
            "duplicate": self.duplicate,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "external_id": self.external_id,
            "result": self.result,
            "case_id": str(self.record_id) if self.record_kind == "case" and self.record_id else None,
            "volunteer_id": (
                str(self.record_id) if self.record_kind == "volunteer" and self.record_id else None
            ),
            "reasons": [{"path": r.path, "code": r.code, "message": r.message} for r in self.reasons],
            "received_at": self.received_at.isoformat() if self.received_at else None,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }
