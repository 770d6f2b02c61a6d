"""One valid example of every contract, for tests, docs and demo data.

The examples tell one story, so they also work together: a partner registers an attorney (a novice who
wants a mentor) and a mentor, and refers a case at Stewart; matching proposes the attorney, who
accepts; the match is made and a mentor assigned. Ids are fixed, so the output is deterministic.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

from lastline_shared.contracts.base import Event, Submission
from lastline_shared.contracts.cases import CaseClosed, CaseOpened, CaseUpdated
from lastline_shared.contracts.enums import (
    CaseChange,
    CaseNeed,
    CaseOutcome,
    CaseType,
    ComplexityFlag,
    DeclineReason,
    DeliveryFailure,
    EscalationCause,
    EscalationLevel,
    ExperienceLevel,
    FacilityPauseReason,
    FacilityStatus,
    HearingKind,
    MatchConstraint,
    MatchEndReason,
    NotificationChannel,
    PracticeArea,
    RecipientKind,
    RetractionReason,
    ScoreComponentName,
    VolunteerRole,
    VolunteerWithdrawalReason,
)
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
    ScoreComponent,
)
from lastline_shared.contracts.notifications import NotificationFailed, NotificationSent
from lastline_shared.contracts.profiles import BarAdmissions, PartnerRef
from lastline_shared.contracts.rejections import RejectionReason, SubmissionRejected, Suggestion
from lastline_shared.contracts.submissions import (
    CaseClosedSubmission,
    CaseOpenedSubmission,
    CaseUpdatedSubmission,
    Client,
    ClientContact,
    ReferralContact,
    VolunteerRegisteredSubmission,
    VolunteerUpdatedSubmission,
    VolunteerWithdrawnSubmission,
)
from lastline_shared.contracts.volunteers import (
    VolunteerRegistered,
    VolunteerUpdated,
    VolunteerWithdrawn,
)

EXAMPLE_PARTNER = "stewart-project"
FACILITY = "STWRTGA"
COURT = "LUM"
CASE_ID = UUID("6f1c1d2e-8a57-4f0e-9a43-1b7f6f4b2c01")
ATTORNEY_ID = UUID("0b6f3c8e-3f5d-4a8e-9a1c-2d4e6f8a0b02")
MENTOR_ID = UUID("3c9d2e1f-7a6b-4c5d-8e9f-0a1b2c3d4e03")
PROPOSAL_ID = UUID("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c04")
MATCH_ID = UUID("1d2c3b4a-5f6e-4d7c-9b8a-7f6e5d4c3b05")
NOTIFICATION_ID = UUID("5e4d3c2b-1a0f-4e9d-8c7b-6a5f4e3d2c06")
SUBMISSION_ID = UUID("7b6a5f4e-3d2c-4b1a-9f8e-7d6c5b4a3f07")
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
HEARING = date(2026, 3, 16)


def _attorney_fields() -> dict[str, object]:
    return {
        "roles": (VolunteerRole.ATTORNEY,),
        "languages": ("en", "es"),
        "experience_level": ExperienceLevel.NOVICE,
        "practice_areas": (PracticeArea.ASYLUM, PracticeArea.BOND),
        "bar_admissions": BarAdmissions(states=("GA",), federal_courts=("gand", "gamd")),
        "eoir_registered": True,
        "max_active_cases": 2,
        "facilities_reachable": (FACILITY,),
        "remote": True,
        "wants_mentor": True,
    }


def _case_fields() -> dict[str, object]:
    return {
        "facility_code": FACILITY,
        "court_code": COURT,
        "case_type": CaseType.ASYLUM,
        "languages": ("mam", "es"),
        "next_hearing_date": HEARING,
        "next_hearing_kind": HearingKind.INDIVIDUAL_MERITS,
        "detained_since": date(2025, 11, 20),
        "complexity_flags": (ComplexityFlag.PRIOR_REMOVAL_ORDER,),
        "needs": (CaseNeed.INTERPRETER, CaseNeed.COUNTRY_CONDITIONS_EXPERT),
        "country_conditions": ("GT",),
    }


def example_events(partner_id: str = EXAMPLE_PARTNER) -> list[Event]:
    """One valid instance of every internal event type, in the order of the topic registry."""
    referral = PartnerRef(partner_id=partner_id, external_id="case-2026-0042")
    match = {"case_id": CASE_ID, "volunteer_id": ATTORNEY_ID, "role": VolunteerRole.ATTORNEY}
    proposal = {**match, "proposal_id": PROPOSAL_ID}
    delivery = {
        "notification_id": NOTIFICATION_ID,
        "channel": NotificationChannel.EMAIL,
        "template": "match_proposed",
        "recipient_kind": RecipientKind.VOLUNTEER,
        "recipient_id": str(ATTORNEY_ID),
        "case_id": CASE_ID,
        "caused_by": UUID("2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c08"),
    }
    return [
        VolunteerRegistered(
            volunteer_id=ATTORNEY_ID,
            name="Dana Whitfield",
            email="dana.whitfield@example.org",
            registered_by=PartnerRef(partner_id=partner_id, external_id="vol-0017"),
            **_attorney_fields(),
        ),
        VolunteerUpdated(
            volunteer_id=MENTOR_ID,
            name="Luis Ortega",
            email="l.ortega@example.org",
            roles=(VolunteerRole.ATTORNEY, VolunteerRole.MENTOR),
            languages=("es", "en"),
            experience_level=ExperienceLevel.EXPERT,
            practice_areas=(PracticeArea.ASYLUM, PracticeArea.WITHHOLDING_CAT),
            bar_admissions=BarAdmissions(states=("GA", "FL")),
            eoir_registered=True,
            max_active_cases=4,
            remote=True,
            can_mentor=True,
        ),
        VolunteerWithdrawn(volunteer_id=MENTOR_ID, reason=VolunteerWithdrawalReason.NO_CAPACITY),
        CaseOpened(case_id=CASE_ID, referrals=(referral,), **_case_fields()),
        CaseUpdated(
            case_id=CASE_ID,
            referrals=(referral,),
            changes=(CaseChange.HEARING_MOVED,),
            **{**_case_fields(), "next_hearing_date": HEARING + timedelta(days=7)},
        ),
        CaseClosed(case_id=CASE_ID, outcome=CaseOutcome.RELIEF_GRANTED, closed_on=date(2026, 6, 1)),
        FacilityStatusChanged(
            facility_code=FACILITY,
            status=FacilityStatus.PAUSED,
            reason=FacilityPauseReason.PHONE_ACCESS_CUT,
            note="Legal calls suspended since Monday; visits still possible.",
            effective_at=NOW,
            changed_by="staff:ana",
        ),
        MatchProposed(
            **proposal,
            reasons=(
                MatchConstraint.ROLE_FITS,
                MatchConstraint.LANGUAGE_SHARED,
                MatchConstraint.PRACTICE_AREA,
                MatchConstraint.FACILITY_REACHABLE,
                MatchConstraint.CAPACITY_AVAILABLE,
                MatchConstraint.MENTOR_AVAILABLE,
            ),
            score=0.82,
            score_components=(
                ScoreComponent(factor=ScoreComponentName.LANGUAGE, value=0.7, weight=3.0),
                ScoreComponent(factor=ScoreComponentName.PRACTICE_AREA, value=1.0, weight=2.0),
                ScoreComponent(factor=ScoreComponentName.PROXIMITY, value=1.0, weight=1.0),
                ScoreComponent(factor=ScoreComponentName.LOAD, value=0.75, weight=1.0),
            ),
            expires_at=NOW + timedelta(hours=48),
            mentor_needed=True,
        ),
        MatchAccepted(**proposal, conflict_attested=True),
        MatchDeclined(**proposal, reason=DeclineReason.SCHEDULE),
        MatchExpired(**proposal),
        MatchRetracted(**proposal, reason=RetractionReason.FILLED),
        MatchMade(**match, match_id=MATCH_ID, proposal_id=PROPOSAL_ID),
        MatchEnded(**match, match_id=MATCH_ID, reason=MatchEndReason.CASE_CLOSED),
        MentorAssigned(case_id=CASE_ID, match_id=MATCH_ID, mentor_id=MENTOR_ID, mentee_id=ATTORNEY_ID),
        CaseEscalated(
            case_id=CASE_ID,
            level=EscalationLevel.DAYS_14,
            next_hearing_date=HEARING,
            days_to_hearing=14,
            facility_code=FACILITY,
            missing=(VolunteerRole.ATTORNEY, VolunteerRole.INTERPRETER),
            proposals_declined=2,
            proposals_expired=1,
            causes=(EscalationCause.NO_LANGUAGE_MATCH, EscalationCause.ALL_DECLINED),
        ),
        NotificationSent(**delivery),
        NotificationFailed(
            **delivery,
            failure=DeliveryFailure.TIMEOUT,
            detail="SMTP timeout after 30 s",
            will_retry=True,
            next_attempt_at=NOW + timedelta(minutes=5),
        ),
        SubmissionRejected(
            submission_id=SUBMISSION_ID,
            partner_id=partner_id,
            event_id="4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e09",
            submission_type="case-opened",
            external_id="case-2026-0043",
            reasons=(
                RejectionReason(
                    path="client.a_number",
                    code="string_pattern_mismatch",
                    message="String should match pattern '^[Aa]?[0-9]{9}$'",
                ),
            ),
            suggestions=(Suggestion(path="client.a_number", hint="9 digits, optionally prefixed by A"),),
        ),
    ]


def example_submissions(partner_id: str = EXAMPLE_PARTNER) -> list[Submission]:
    """One valid instance of every partner-facing submission type (publish with source
    ``/partners/<partner_id>``; the partner id also prefixes the external ids)."""
    client = Client(
        given_name="Ixchel",
        family_name="Pérez Tzoc",
        other_names=("Ixchel Perez",),
        a_number="A201234567",
        date_of_birth=date(1994, 7, 3),
        country_of_nationality="GT",
        contact=ClientContact(phone="+1 229 555 0142"),
    )
    contact = ReferralContact(name="Rosa Alvarez", email="rosa@example.org")
    volunteer_id = f"{partner_id}-vol-0017"
    case_id = f"{partner_id}-case-2026-0042"
    notes = "Prefers Mam; Spanish as a second language. Hearing date on the EOIR portal."
    return [
        VolunteerRegisteredSubmission(
            external_id=volunteer_id,
            name="Dana Whitfield",
            email="dana.whitfield@example.org",
            phone="+1 404 555 0199",
            **_attorney_fields(),
        ),
        VolunteerUpdatedSubmission(
            external_id=volunteer_id,
            name="Dana Whitfield",
            email="dana.whitfield@example.org",
            **{**_attorney_fields(), "max_active_cases": 3},
        ),
        VolunteerWithdrawnSubmission(external_id=volunteer_id, reason=VolunteerWithdrawalReason.LEFT_NETWORK),
        CaseOpenedSubmission(
            external_id=case_id,
            client=client,
            notes=notes,
            referral_contact=contact,
            **_case_fields(),
        ),
        CaseUpdatedSubmission(
            external_id=case_id,
            client=client,
            notes=notes,
            referral_contact=contact,
            **{**_case_fields(), "next_hearing_date": HEARING + timedelta(days=7)},
        ),
        CaseClosedSubmission(
            external_id=case_id, outcome=CaseOutcome.BOND_GRANTED, closed_on=date(2026, 4, 2)
        ),
    ]
