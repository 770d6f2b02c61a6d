"""Every contract class, by CloudEvents type: the internal models and the partner-facing ones."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from lastline_shared.contracts.base import Event, Submission
from lastline_shared.contracts.cases import CaseClosed, CaseOpened, CaseUpdated
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
from lastline_shared.contracts.submissions import (
    CaseClosedSubmission,
    CaseOpenedSubmission,
    CaseUpdatedSubmission,
    VolunteerRegisteredSubmission,
    VolunteerUpdatedSubmission,
    VolunteerWithdrawnSubmission,
)
from lastline_shared.contracts.volunteers import (
    VolunteerRegistered,
    VolunteerUpdated,
    VolunteerWithdrawn,
)

INTERNAL_EVENTS: tuple[type[Event], ...] = (
    VolunteerRegistered,
    VolunteerUpdated,
    VolunteerWithdrawn,
    CaseOpened,
    CaseUpdated,
    CaseClosed,
    FacilityStatusChanged,
    MatchProposed,
    MatchAccepted,
    MatchDeclined,
    MatchExpired,
    MatchRetracted,
    MatchMade,
    MatchEnded,
    MentorAssigned,
    CaseEscalated,
    NotificationSent,
    NotificationFailed,
    SubmissionRejected,
)

PARTNER_SUBMISSIONS: tuple[type[Submission], ...] = (
    VolunteerRegisteredSubmission,
    VolunteerUpdatedSubmission,
    VolunteerWithdrawnSubmission,
    CaseOpenedSubmission,
    CaseUpdatedSubmission,
    CaseClosedSubmission,
)

INTERNAL_BY_TYPE: Mapping[str, type[Event]] = MappingProxyType(
    {cls.event_type: cls for cls in INTERNAL_EVENTS}
)
SUBMISSION_BY_TYPE: Mapping[str, type[Submission]] = MappingProxyType(
    {cls.event_type: cls for cls in PARTNER_SUBMISSIONS}
)
