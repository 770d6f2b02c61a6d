"""Matching's tables: projections of volunteers, cases and facilities, and its own proposals and matches.

Capacity lives in the database: ``volunteers.active_cases + reserved`` may only grow through the
guarded ``UPDATE ... WHERE active_cases + reserved < max_active_cases`` in ``store.py`` (a proposal
reserves a place, an acceptance turns it into an active case), so two matching instances can never
overbook a volunteer: the second update finds the row changed and matches nothing. The partial unique
indexes make "one active match per case and role" and "one open proposal per case, role and
volunteer" facts of the schema, not of the code.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

PROPOSAL_STATUSES = ("open", "accepted", "declined", "expired", "retracted")


def _stamp(name: str) -> Column[object]:
    return Column(name, DateTime(timezone=True), nullable=False, server_default=func.now())


class MatchingTables:
    def __init__(self, metadata: MetaData) -> None:
        self.volunteers = Table(
            "volunteers",
            metadata,
            Column("volunteer_id", UUID(as_uuid=True), primary_key=True),
            Column("status", Text, nullable=False),
            # The latest VolunteerProfile as published by intake (the volunteer's own contact).
            Column("profile", JSONB, nullable=False),
            # Copied out of the profile for the candidate query's indexes.
            Column("roles", ARRAY(Text), nullable=False),
            Column("languages", ARRAY(Text), nullable=False),
            Column("facilities_reachable", ARRAY(Text), nullable=False),
            Column("remote", Boolean, nullable=False),
            Column("can_mentor", Boolean, nullable=False),
            Column("practice_areas", ARRAY(Text), nullable=False, server_default="{}"),
            Column("experience_level", Text, nullable=False, server_default="novice"),
            Column("federal_courts", ARRAY(Text), nullable=False, server_default="{}"),
            Column("eoir_registered", Boolean, nullable=False, server_default="false"),
            Column("wants_mentor", Boolean, nullable=False, server_default="false"),
            Column("countries_of_expertise", ARRAY(Text), nullable=False, server_default="{}"),
            Column("registered_partner", Text, nullable=True),
            Column("max_active_cases", Integer, nullable=False),
            Column("active_cases", Integer, nullable=False, server_default="0"),
            Column("reserved", Integer, nullable=False, server_default="0"),
            Column("mentees", Integer, nullable=False, server_default="0"),
            _stamp("updated_at"),
            # Taken from a sequence by a trigger on every change (migration 0006): what ``pools.py``
            # reads to keep each instance's in-memory volunteers in step.
            Column(
                "version", BigInteger, nullable=False, server_default=text("nextval('volunteer_versions')")
            ),
            CheckConstraint("status IN ('active', 'withdrawn')", name="status"),
            CheckConstraint("active_cases >= 0 AND reserved >= 0 AND mentees >= 0", name="counts"),
            Index(None, "roles", postgresql_using="gin"),
            Index(None, "languages", postgresql_using="gin"),
            Index(None, "facilities_reachable", postgresql_using="gin"),
            Index(None, "version"),
        )
        self.cases = Table(
            "cases",
            metadata,
            Column("case_id", UUID(as_uuid=True), primary_key=True),
            # open: needs someone; placed: every role it needs is filled; closed.
            Column("status", Text, nullable=False),
            # The latest CaseSnapshot as published by intake (no client PII).
            Column("facts", JSONB, nullable=False),
            Column("facility_code", Text, nullable=False),
            Column("next_hearing_date", Date, nullable=True),
            Column("opened_at", DateTime(timezone=True), nullable=False),
            Column("placed_at", DateTime(timezone=True), nullable=True),
            # The lowest escalation level raised so far (14, 7, 3 days before the hearing).
            Column("escalated_level", SmallInteger, nullable=True),
            _stamp("updated_at"),
            CheckConstraint("status IN ('open', 'placed', 'closed')", name="status"),
            Index(None, "next_hearing_date", postgresql_where=text("status = 'open'")),
        )
        self.facilities = Table(
            "facilities",
            metadata,
            Column("facility_code", Text, primary_key=True),
            Column("paused", Boolean, nullable=False),
            Column("reason", Text, nullable=True),
            _stamp("changed_at"),
        )
        self.proposals = Table(
            "proposals",
            metadata,
            Column("proposal_id", UUID(as_uuid=True), primary_key=True),
            Column("case_id", UUID(as_uuid=True), nullable=False),
            Column("volunteer_id", UUID(as_uuid=True), nullable=False),
            Column("role", Text, nullable=False),
            Column("status", Text, nullable=False),
            Column("score", Float, nullable=False),
            Column("components", JSONB, nullable=False),
            Column("reasons", JSONB, nullable=False),
            Column("mentor_needed", Boolean, nullable=False),
            Column("attempt", Integer, nullable=False),
            _stamp("created_at"),
            Column("expires_at", DateTime(timezone=True), nullable=False),
            Column("decided_at", DateTime(timezone=True), nullable=True),
            Column("outcome_reason", Text, nullable=True),
            CheckConstraint(
                "status IN ({})".format(", ".join(f"'{s}'" for s in PROPOSAL_STATUSES)), name="status"
            ),
            Index(
                "uq_proposals_open",
                "case_id",
                "role",
                "volunteer_id",
                unique=True,
                postgresql_where=text("status = 'open'"),
            ),
            Index(None, "expires_at", postgresql_where=text("status = 'open'")),
            Index(None, "volunteer_id", "status"),
            Index(None, "case_id"),
        )
        self.matches = Table(
            "matches",
            metadata,
            Column("match_id", UUID(as_uuid=True), primary_key=True),
            Column("case_id", UUID(as_uuid=True), nullable=False),
            Column("volunteer_id", UUID(as_uuid=True), nullable=False),
            Column("role", Text, nullable=False),
            Column("proposal_id", UUID(as_uuid=True), nullable=True),
            Column("status", Text, nullable=False),
            Column("mentor_id", UUID(as_uuid=True), nullable=True),
            Column("overridden_by", Text, nullable=True),
            _stamp("made_at"),
            Column("ended_at", DateTime(timezone=True), nullable=True),
            Column("end_reason", Text, nullable=True),
            CheckConstraint("status IN ('active', 'ended')", name="status"),
            Index(
                "uq_matches_active",
                "case_id",
                "role",
                unique=True,
                postgresql_where=text("status = 'active'"),
            ),
            Index(None, "volunteer_id", "status"),
            Index(None, "mentor_id", postgresql_where=text("status = 'active'")),
        )
        # Cases to (re)consider, claimed one at a time by the decision loops of every instance: the
        # consumer only records that something changed, so its batches stay short and a decision
        # never holds locks of many cases at once.
        self.pending = Table(
            "pending_cases",
            metadata,
            Column("case_id", UUID(as_uuid=True), primary_key=True),
            Column("due_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            Column("attempts", Integer, nullable=False, server_default="0"),
            Index(None, "due_at"),
        )
        # The last global pass's dual price of one place of each volunteer it priced (score units):
        # online decisions rank by score minus price, so volunteers that harder cases need go last.
        # A table of its own, replaced whole by each pass: the volunteers' rows, which reservations
        # lock, are not touched.
        self.prices = Table(
            "volunteer_prices",
            metadata,
            Column("volunteer_id", UUID(as_uuid=True), primary_key=True),
            Column("price", Float, nullable=False),
        )
        self.declines = Table(
            "declines",
            metadata,
            Column("case_id", UUID(as_uuid=True), primary_key=True),
            Column("volunteer_id", UUID(as_uuid=True), primary_key=True),
            Column("reason", Text, nullable=False),
            _stamp("declined_at"),
        )
