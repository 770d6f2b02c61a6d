"""Events of the ``matches`` topic, keyed by ``case_id`` so a case's placement history stays in order.

A proposal offers one case to one volunteer in one role; it is accepted (with a conflict attestation),
declined or expires. An accepted proposal becomes a match; a match ends. A novice's match gets a mentor.
A case nobody took escalates as its hearing nears (14, 7, 3 days).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field, Strict, field_validator
from pydantic_core import PydanticCustomError

from lastline_shared.contracts.base import Event, Part
from lastline_shared.contracts.enums import (
    DeclineReason,
    EscalationCause,
    EscalationLevel,
    MatchConstraint,
    MatchEndReason,
    RetractionReason,
    ScoreComponentName,
    VolunteerRole,
)
from lastline_shared.contracts.primitives import (
    CaseId,
    Count,
    Day,
    FacilityCode,
    Flag,
    ShortText,
    Timestamp,
    UniqueTuple,
    VolunteerId,
)
from lastline_shared.contracts.topics import MATCHES

Score = Annotated[float, Strict(), Field(ge=0, le=1)]
Weight = Annotated[float, Strict(), Field(ge=0)]


class ScoreComponent(Part):
    """One named factor of a proposal's score: ``score = sum(weight * value) / sum(weight)``."""

    factor: ScoreComponentName
    value: Score
    weight: Weight


class _MatchEvent(Event):
    topic: ClassVar[str] = MATCHES.name

    case_id: CaseId
    volunteer_id: VolunteerId
    role: VolunteerRole
    """The role the volunteer is sought for on this case."""


class _ProposalEvent(_MatchEvent):
    proposal_id: UUID


class MatchProposed(_ProposalEvent):
    """A case was offered to a volunteer, who may accept until ``expires_at``."""

    event_type: ClassVar[str] = "match-proposed"

    reasons: UniqueTuple[MatchConstraint] = Field(min_length=1, max_length=len(MatchConstraint))
    """The constraints that held."""
    score: Score
    score_components: tuple[ScoreComponent, ...] = Field(default=(), max_length=len(ScoreComponentName))
    expires_at: Timestamp
    mentor_needed: Flag = False
    """The volunteer is a novice who will be paired with a mentor on acceptance."""
    attempt: Count = Field(default=1, ge=1)
    """The how-manieth proposal for this case and role."""

    @field_validator("score_components")
    @classmethod
    def _distinct_components(cls, value: tuple[ScoreComponent, ...]) -> tuple[ScoreComponent, ...]:
        if len({c.factor for c in value}) != len(value):
            raise PydanticCustomError("duplicate_items", "Each factor appears once")
        return value


class MatchAccepted(_ProposalEvent):
    """The volunteer accepted and attested that they have no conflict of interest."""

    event_type: ClassVar[str] = "match-accepted"

    conflict_attested: Literal[True]


class MatchDeclined(_ProposalEvent):
    """The volunteer declined the proposal."""

    event_type: ClassVar[str] = "match-declined"

    reason: DeclineReason


class MatchExpired(_ProposalEvent):
    """Nobody answered the proposal in time."""

    event_type: ClassVar[str] = "match-expired"


class MatchRetracted(_ProposalEvent):
    """Matching withdrew an open proposal; the volunteer's link no longer works."""

    event_type: ClassVar[str] = "match-retracted"

    reason: RetractionReason


class MatchMade(_MatchEvent):
    """The volunteer is placed on the case."""

    event_type: ClassVar[str] = "match-made"

    match_id: UUID
    proposal_id: UUID | None = None
    """The accepted proposal; absent when staff placed the volunteer directly."""
    overridden_by: ShortText | None = None
    """The staff account that overrode matching, if any."""


class MatchEnded(_MatchEvent):
    """A placement ended."""

    event_type: ClassVar[str] = "match-ended"

    match_id: UUID
    reason: MatchEndReason


class MentorAssigned(Event):
    """A mentor was paired with the volunteer of a match."""

    event_type: ClassVar[str] = "mentor-assigned"
    topic: ClassVar[str] = MATCHES.name

    case_id: CaseId
    match_id: UUID
    """The mentee's match."""
    mentor_id: VolunteerId
    mentee_id: VolunteerId


class CaseEscalated(Event):
    """A case still lacks someone and its hearing is near: staff should act."""

    event_type: ClassVar[str] = "case-escalated"
    topic: ClassVar[str] = MATCHES.name

    case_id: CaseId
    level: EscalationLevel
    """Days before the hearing this escalation stands for: 14, 7 or 3."""
    next_hearing_date: Day
    days_to_hearing: Count
    facility_code: FacilityCode
    missing: UniqueTuple[VolunteerRole] = Field(min_length=1, max_length=len(VolunteerRole))
    """The roles still unfilled."""
    proposals_open: Count = 0
    proposals_declined: Count = 0
    proposals_expired: Count = 0
    causes: UniqueTuple[EscalationCause] = Field(default=(), max_length=len(EscalationCause))
    """What stands in the way, as far as matching can tell (no language match, no capacity, ...)."""
