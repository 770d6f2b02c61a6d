"""What the figures are made of: filters, breakdowns and one row model per figure.

Counts are ``int | None``: ``None`` only in the public view, where a count below the threshold (and
whatever would let one work it out) is suppressed. Durations are in hours.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from lastline_shared.contracts.enums import CaseType

Count = int | None
Share = float | None
Hours = float | None


class View(StrEnum):
    STAFF = "staff"
    PUBLIC = "public"


class Dimension(StrEnum):
    """What a breakdown groups by."""

    ALL = "all"
    FACILITY = "facility"
    COURT = "court"
    PARTNER = "partner"
    CASE_TYPE = "case_type"
    LANGUAGE = "language"
    WEEK = "week"
    ROLE = "role"
    EXPERIENCE = "experience"


class Filters(BaseModel):
    """Narrow every figure: cases by facility, referring partner, type and referral date (UTC days).

    Volunteer, notification and rejection figures use the date range on their own dates and the
    partner on the registering or rejected partner; they ignore the case filters.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    facility: str | None = Field(default=None, max_length=32, pattern=r"^[A-Z0-9][A-Z0-9_-]{1,31}$")
    partner: str | None = Field(default=None, max_length=40, pattern=r"^[a-z0-9-]{2,40}$")
    case_type: CaseType | None = None
    date_from: date | None = None
    date_to: date | None = Field(default=None, description="Inclusive")

    def is_empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())


class Row(BaseModel):
    model_config = ConfigDict(frozen=True)


class SummaryRow(Row):
    referred: Count = Field(description="Cases referred (opened)")
    open: Count = Field(description="Cases open now")
    without_counsel: Count = Field(description="Open cases with no attorney or accredited representative now")
    without_counsel_share: Share
    placed: Count = Field(description="Cases that ever had counsel placed")
    closed: Count
    median_hours_to_placement: Hours
    active_volunteers: Count
    paused_facilities: Count


class CaseCountRow(Row):
    key: str
    label: str
    referred: Count
    placed: Count
    open: Count
    unplaced: Count = Field(description="Open now without counsel")
    unplaced_share: Share = Field(description="unplaced / open")


class TrendRow(Row):
    week: date = Field(description="Monday of the week; values as at the end of the week")
    open: Count
    without_counsel: Count
    without_counsel_share: Share


class TimeToMatchRow(Row):
    key: str
    label: str
    cases: Count
    proposed: Count = Field(description="Cases with a first proposal")
    median_hours_to_proposal: Hours
    p90_hours_to_proposal: Hours
    placed: Count
    median_hours_to_placement: Hours
    p90_hours_to_placement: Hours


class ProposalRow(Row):
    outcome: str = Field(description="accepted, declined, expired, retracted or open")
    reason: str | None
    proposals: Count


class EscalationRow(Row):
    level: int = Field(description="Days before the hearing: 14, 7 or 3")
    cause: str | None = Field(description="null: every cause of this level")
    escalations: Count
    cases: Count


class VolunteerRow(Row):
    key: str
    label: str
    registered: Count
    active: Count
    at_capacity: Count
    mentoring: Count
    withdrawn: Count


class MentorSummaryRow(Row):
    pairs: Count
    active_pairs: Count
    mentors: Count
    mentees: Count


class MentorPairRow(Row):
    mentor_id: UUID
    mentee_id: UUID
    case_id: UUID
    assigned_at: datetime
    active: bool


class OutcomeRow(Row):
    outcome: str
    label: str
    closed: Count
    with_counsel: Count
    without_counsel: Count


class NotificationRow(Row):
    channel: str
    template: str
    total: Count
    sent: Count
    failed: Count = Field(description="Given up (no retry left)")
    pending: Count
    delivery_rate: Share = Field(description="sent / (sent + failed)")


class RejectionRow(Row):
    partner_id: str
    code: str | None = Field(description="null: every reason of this partner")
    submissions: Count


class FacilityRow(Row):
    facility_code: str
    name: str
    city: str | None
    state: str | None
    referred: Count
    open: Count
    without_counsel: Count
    without_counsel_share: Share
    placed: Count
    median_hours_to_placement: Hours
    status: str = Field(description="open or paused")
    pause_reason: str | None
    note: str | None = Field(description="Staff's note on a pause (staff view only)")
