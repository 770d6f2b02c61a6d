"""Notifications' tables: what it keeps of other services' streams, and what it sends.

Projections (rebuilt by replaying the topics):

- ``volunteers``: each volunteer's own name, email, preferred language and status (from ``volunteers``).
- ``cases``: the pseudonymous case summary an email may show, and the referring partners whose
  webhooks hear of it (from ``cases``; no client PII exists there).
- ``placements``: who is placed on which case (from ``matches``), for reminders and withdrawals.
- ``held_events``: ``matches`` events that arrived before their case; applied when it arrives.

Its own records:

- ``deliveries``: one row per (source event, channel, recipient, template, destination), unique, so a
  redelivered event sends nothing twice; the row's status is the send's state machine.
- ``webhook_subscriptions``: partners' endpoints, the event kinds they want, their signing secrets.
- ``inbox_items``: the staff inbox.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

DELIVERY_STATUSES = ("pending", "sending", "sent", "failed")
INBOX_KINDS = ("escalation", "placement", "rejection", "delivery_failed", "match_ended")
WEBHOOK_KINDS = ("placed", "rejected", "escalated", "closed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return "{} IN ({})".format(column, ", ".join(f"'{v}'" for v in values))


class NotificationsTables:
    """The table definitions, bound to a service's metadata."""

    def __init__(self, metadata: MetaData) -> None:
        self.volunteers = Table(
            "volunteers",
            metadata,
            Column("volunteer_id", UUID(as_uuid=True), primary_key=True),
            Column("name", Text, nullable=False),
            Column("email", Text, nullable=False),
            # ISO 639-3, the first of the volunteer's languages.
            Column("language", Text, nullable=False),
            Column("status", Text, nullable=False),
            # The time of the event the row reflects: an older event never overwrites a newer one.
            Column("event_time", DateTime(timezone=True), nullable=False),
            CheckConstraint("status IN ('active', 'withdrawn')", name="status"),
        )
        self.cases = Table(
            "cases",
            metadata,
            Column("case_id", UUID(as_uuid=True), primary_key=True),
            Column("status", Text, nullable=False),
            Column("facility_code", Text, nullable=False),
            Column("court_code", Text, nullable=False),
            Column("case_type", Text, nullable=False),
            Column("languages", ARRAY(Text), nullable=False),
            Column("next_hearing_date", Date, nullable=True),
            # [{"partner_id": ..., "external_id": ...}]: who referred the case, and their id for it.
            Column("referrals", JSONB, nullable=False),
            Column("event_time", DateTime(timezone=True), nullable=False),
            CheckConstraint("status IN ('open', 'closed')", name="status"),
        )
        self.placements = Table(
            "placements",
            metadata,
            Column("match_id", UUID(as_uuid=True), primary_key=True),
            Column("case_id", UUID(as_uuid=True), nullable=False),
            Column("volunteer_id", UUID(as_uuid=True), nullable=False),
            Column("role", Text, nullable=False),
            Column("mentor_id", UUID(as_uuid=True), nullable=True),
            Column("active", Boolean, nullable=False),
            Column("made_at", DateTime(timezone=True), nullable=False),
            Index(None, "case_id"),
            Index(None, "volunteer_id", postgresql_where=text("active")),
        )
        self.held_events = Table(
            "held_events",
            metadata,
            Column("id", BigInteger, Identity(always=True), primary_key=True),
            Column("case_id", UUID(as_uuid=True), nullable=False),
            Column("event_id", Text, nullable=False),
            Column("source", Text, nullable=False),
            Column("event_type", Text, nullable=False),
            Column("event_time", DateTime(timezone=True), nullable=False),
            # The event's data as published (model_dump_json), decoded again when released.
            Column("data", Text, nullable=False),
            Index(None, "case_id", "id"),
        )
        self.deliveries = Table(
            "deliveries",
            metadata,
            Column("notification_id", UUID(as_uuid=True), primary_key=True),
            # The ce_id of the triggering event (or a reminder's own key): with the rest of the unique
            # index, what makes a redelivered event a no-op.
            Column("source_event_id", Text, nullable=False),
            Column("event_type", Text, nullable=False),
            Column("channel", Text, nullable=False),
            # The queue it waits in: "smtp", "webhook:<subscription id>", "inbox".
            Column("destination", Text, nullable=False),
            Column("recipient_kind", Text, nullable=False),
            Column("recipient_id", Text, nullable=False),
            Column("template", Text, nullable=False),
            Column("case_id", UUID(as_uuid=True), nullable=True),
            # What the message says beyond the projections (no client PII: there is none to have).
            Column("context", JSONB, nullable=False),
            Column("status", Text, nullable=False),
            Column("attempts", Integer, nullable=False, server_default="0"),
            # When a pending row is due; for a row being sent, when its claim lapses.
            Column("next_attempt_at", DateTime(timezone=True), nullable=False),
            Column("claim_token", UUID(as_uuid=True), nullable=True),
            Column("failure", Text, nullable=True),
            Column("last_error", Text, nullable=True),
            Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            Column("finished_at", DateTime(timezone=True), nullable=True),
            CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
            Index(
                "uq_deliveries_once",
                "source_event_id",
                "channel",
                "recipient_id",
                "template",
                "destination",
                unique=True,
            ),
            Index(
                None,
                "destination",
                "next_attempt_at",
                postgresql_where=text("status IN ('pending', 'sending')"),
            ),
            Index(
                None,
                "channel",
                "next_attempt_at",
                postgresql_where=text("status IN ('pending', 'sending')"),
            ),
            Index(None, "status", "created_at", postgresql_where=text("status = 'failed'")),
        )
        self.webhook_subscriptions = Table(
            "webhook_subscriptions",
            metadata,
            Column("subscription_id", UUID(as_uuid=True), primary_key=True),
            Column("partner_id", Text, nullable=False),
            Column("url", Text, nullable=False),
            Column("kinds", ARRAY(Text), nullable=False),
            # Standard Webhooks secret (whsec_ + base64): needed in clear to sign, shown once.
            Column("secret", Text, nullable=False),
            Column("active", Boolean, nullable=False, server_default=text("true")),
            Column("created_by", Text, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            Column("disabled_at", DateTime(timezone=True), nullable=True),
            Index(None, "partner_id", postgresql_where=text("active")),
        )
        self.inbox_items = Table(
            "inbox_items",
            metadata,
            # Increasing: also the live stream's event id, so a client resumes with Last-Event-ID.
            Column("item_id", BigInteger, Identity(always=True), primary_key=True),
            Column("kind", Text, nullable=False),
            Column("source_event_id", Text, nullable=False),
            Column("case_id", UUID(as_uuid=True), nullable=True),
            Column("facility_code", Text, nullable=True),
            Column("partner_id", Text, nullable=True),
            # Escalations: days before the hearing (3 is the most urgent) and the hearing date.
            Column("level", Integer, nullable=True),
            Column("next_hearing_date", Date, nullable=True),
            Column("title", Text, nullable=False),
            Column("details", JSONB, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            Column("done_at", DateTime(timezone=True), nullable=True),
            Column("done_by", Text, nullable=True),
            CheckConstraint(_in("kind", INBOX_KINDS), name="kind"),
            Index("uq_inbox_items_once", "source_event_id", "kind", unique=True),
            Index(None, "kind", "level", "next_hearing_date", postgresql_where=text("done_at IS NULL")),
        )
