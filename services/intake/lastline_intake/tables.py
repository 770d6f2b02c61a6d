"""Intake's tables for submissions and the records they build (partners are in ``partners.py``).

- ``submissions``: every submission received, by either channel, with what became of it. The unique
  ``(partner_id, event_id)`` makes a redelivered or resent submission a duplicate, whichever channel
  it came through.
- ``quarantine``: the raw record of every rejected submission (value encrypted: it may hold PII),
  with the reasons, for staff review.
- ``volunteers`` / ``volunteer_refs``: one volunteer per email, and each partner's ids for them.
- ``cases`` / ``case_refs``: one open case per client (the A-number's blind index is unique among
  open cases), the client's PII encrypted, and each partner's ids for the case.
- ``held_submissions``: updates that arrived before their registration, applied when it arrives.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

SUBMISSION_STATUSES = ("processing", "accepted", "held", "rejected")
RECORD_KINDS = ("case", "volunteer")


def _now() -> Column[object]:
    return Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now())


class IntakeTables:
    """The table definitions, bound to a service's metadata."""

    def __init__(self, metadata: MetaData) -> None:
        self.submissions = Table(
            "submissions",
            metadata,
            Column("submission_id", UUID(as_uuid=True), primary_key=True),
            # Null when a record did not say (or not readably) who sent it or its id.
            Column("partner_id", Text, nullable=True),
            Column("event_id", Text, nullable=True),
            Column("event_type", Text, nullable=True),
            Column("external_id", Text, nullable=True),
            Column("channel", Text, nullable=False),
            Column("received_at", DateTime(timezone=True), nullable=False),
            Column("status", Text, nullable=False),
            # created, updated, merged, unchanged, closed, withdrawn, held
            Column("result", Text, nullable=True),
            Column("record_kind", Text, nullable=True),
            Column("record_id", UUID(as_uuid=True), nullable=True),
            Column("reasons", JSONB, nullable=True),
            Column("decided_at", DateTime(timezone=True), nullable=True),
            CheckConstraint(
                "status IN ({})".format(", ".join(f"'{s}'" for s in SUBMISSION_STATUSES)), name="status"
            ),
            Index(None, "partner_id", "event_id", unique=True),
            Index(None, "partner_id", "received_at"),
        )
        self.quarantine = Table(
            "quarantine",
            metadata,
            Column(
                "submission_id",
                UUID(as_uuid=True),
                ForeignKey("submissions.submission_id", ondelete="CASCADE"),
                primary_key=True,
            ),
            Column("partner_id", Text, nullable=True),
            Column("channel", Text, nullable=False),
            Column("topic", Text, nullable=True),
            Column("partition", Integer, nullable=True),
            Column("offset", BigInteger, nullable=True),
            # Key and headers as received (names and base64 values); the value is encrypted.
            Column("record_key", LargeBinary, nullable=True),
            Column("headers", JSONB, nullable=False),
            Column("value_encrypted", LargeBinary, nullable=True),
            Column("value_bytes", Integer, nullable=False),
            Column("reasons", JSONB, nullable=False),
            Column("received_at", DateTime(timezone=True), nullable=False),
            Column("reviewed_at", DateTime(timezone=True), nullable=True),
            Column("reviewed_by", Text, nullable=True),
            Column("review_note", Text, nullable=True),
            Index(None, "received_at", postgresql_where=text("reviewed_at IS NULL")),
        )
        self.volunteers = Table(
            "volunteers",
            metadata,
            Column("volunteer_id", UUID(as_uuid=True), primary_key=True),
            Column("email_key", Text, nullable=False, unique=True),
            Column("status", Text, nullable=False),
            # The internal VolunteerProfile as published (the volunteer's own contact, no client PII).
            Column("profile", JSONB, nullable=False),
            Column("version", Integer, nullable=False),
            _now(),
            Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            CheckConstraint("status IN ('active', 'withdrawn')", name="status"),
        )
        self.volunteer_refs = Table(
            "volunteer_refs",
            metadata,
            Column("partner_id", Text, primary_key=True),
            Column("external_id", Text, primary_key=True),
            Column(
                "volunteer_id",
                UUID(as_uuid=True),
                ForeignKey("volunteers.volunteer_id"),
                nullable=False,
            ),
            _now(),
            Index(None, "volunteer_id"),
        )
        self.cases = Table(
            "cases",
            metadata,
            Column("case_id", UUID(as_uuid=True), primary_key=True),
            Column("status", Text, nullable=False),
            # HMAC of the normalised A-number: finds the same client across partners.
            Column("a_number_index", Text, nullable=True),
            # The case as published (CaseFacts and referrals): no client PII.
            Column("facts", JSONB, nullable=False),
            # Client, referral contacts, notes and documents: AES-GCM, bound to the case id.
            Column("pii", LargeBinary, nullable=True),
            Column("pii_key_id", Text, nullable=True),
            Column("outcome", Text, nullable=True),
            Column("closed_on", Date, nullable=True),
            Column("pii_erased_at", DateTime(timezone=True), nullable=True),
            Column("version", Integer, nullable=False),
            _now(),
            Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            CheckConstraint("status IN ('open', 'closed')", name="status"),
            Index(
                "uq_cases_open_a_number",
                "a_number_index",
                unique=True,
                postgresql_where=text("status = 'open' AND a_number_index IS NOT NULL"),
            ),
            Index(None, "closed_on", postgresql_where=text("status = 'closed' AND pii IS NOT NULL")),
        )
        self.case_refs = Table(
            "case_refs",
            metadata,
            Column("partner_id", Text, primary_key=True),
            Column("external_id", Text, primary_key=True),
            Column("case_id", UUID(as_uuid=True), ForeignKey("cases.case_id"), nullable=False),
            _now(),
            Index(None, "case_id"),
        )
        self.held = Table(
            "held_submissions",
            metadata,
            Column(
                "submission_id",
                UUID(as_uuid=True),
                ForeignKey("submissions.submission_id", ondelete="CASCADE"),
                primary_key=True,
            ),
            Column("record_kind", Text, nullable=False),
            Column("partner_id", Text, nullable=False),
            Column("external_id", Text, nullable=False),
            Column("event_type", Text, nullable=False),
            Column("event_id", Text, nullable=False),
            Column("traceparent", Text, nullable=True),
            # The validated submission, encrypted (case updates carry client PII).
            Column("payload", LargeBinary, nullable=False),
            Column("received_at", DateTime(timezone=True), nullable=False),
            CheckConstraint(
                "record_kind IN ({})".format(", ".join(f"'{k}'" for k in RECORD_KINDS)), name="record_kind"
            ),
            Index(None, "partner_id", "record_kind", "external_id", "received_at"),
        )
