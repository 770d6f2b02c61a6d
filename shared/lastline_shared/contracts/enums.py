"""The closed vocabularies of the contracts.

Values are snake_case strings and never change meaning within a schema version; new members are an
additive change. Where two vocabularies meet (a case's needs are volunteer roles, a case type is a
practice area) they share values, so matching compares them without a mapping table.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class VolunteerRole(StrEnum):
    ATTORNEY = "attorney"
    ACCREDITED_REPRESENTATIVE = "accredited_representative"
    LAW_STUDENT = "law_student"
    PARALEGAL = "paralegal"
    MENTOR = "mentor"
    INTERPRETER = "interpreter"
    MEDICAL_EVALUATOR = "medical_evaluator"
    PSYCH_EVALUATOR = "psych_evaluator"
    COUNTRY_CONDITIONS_EXPERT = "country_conditions_expert"


class ExperienceLevel(StrEnum):
    NOVICE = "novice"
    INTERMEDIATE = "intermediate"
    EXPERIENCED = "experienced"
    EXPERT = "expert"

    @property
    def rank(self) -> int:
        """0 for novice up to 3 for expert, for comparisons."""
        return list(ExperienceLevel).index(self)


class PracticeArea(StrEnum):
    REMOVAL_DEFENSE = "removal_defense"
    ASYLUM = "asylum"
    WITHHOLDING_CAT = "withholding_cat"
    CANCELLATION_OF_REMOVAL = "cancellation_of_removal"
    BOND = "bond"
    PAROLE = "parole"
    CREDIBLE_FEAR = "credible_fear"
    REASONABLE_FEAR = "reasonable_fear"
    ADJUSTMENT_OF_STATUS = "adjustment_of_status"
    SIJS = "sijs"
    U_VISA = "u_visa"
    T_VISA = "t_visa"
    VAWA = "vawa"
    TPS = "tps"
    MOTION_TO_REOPEN = "motion_to_reopen"
    BIA_APPEAL = "bia_appeal"
    FEDERAL_HABEAS = "federal_habeas"
    PETITION_FOR_REVIEW = "petition_for_review"
    CRIMMIGRATION = "crimmigration"


class CaseType(StrEnum):
    """The matter a volunteer is sought for; every value is also a practice area."""

    REMOVAL_DEFENSE = "removal_defense"
    ASYLUM = "asylum"
    WITHHOLDING_CAT = "withholding_cat"
    CANCELLATION_OF_REMOVAL = "cancellation_of_removal"
    BOND = "bond"
    PAROLE = "parole"
    CREDIBLE_FEAR = "credible_fear"
    REASONABLE_FEAR = "reasonable_fear"
    ADJUSTMENT_OF_STATUS = "adjustment_of_status"
    SIJS = "sijs"
    U_VISA = "u_visa"
    T_VISA = "t_visa"
    VAWA = "vawa"
    TPS = "tps"
    MOTION_TO_REOPEN = "motion_to_reopen"
    BIA_APPEAL = "bia_appeal"
    FEDERAL_HABEAS = "federal_habeas"
    PETITION_FOR_REVIEW = "petition_for_review"

    @property
    def practice_area(self) -> PracticeArea:
        return PracticeArea(self.value)


class ComplexityFlag(StrEnum):
    CRIMINAL_HISTORY = "criminal_history"
    PRIOR_REMOVAL_ORDER = "prior_removal_order"
    REINSTATEMENT = "reinstatement"
    IN_ABSENTIA_ORDER = "in_absentia_order"
    EXPEDITED_REMOVAL = "expedited_removal"
    MENTAL_COMPETENCY = "mental_competency"
    SERIOUS_MEDICAL_CONDITION = "serious_medical_condition"
    FEDERAL_HABEAS = "federal_habeas"
    APPEAL = "appeal"
    TRANSFER_PENDING = "transfer_pending"


class CaseNeed(StrEnum):
    """Support a case needs beyond counsel; every value is also a volunteer role."""

    INTERPRETER = "interpreter"
    MEDICAL_EVALUATOR = "medical_evaluator"
    PSYCH_EVALUATOR = "psych_evaluator"
    COUNTRY_CONDITIONS_EXPERT = "country_conditions_expert"

    @property
    def role(self) -> VolunteerRole:
        return VolunteerRole(self.value)


class HearingKind(StrEnum):
    MASTER_CALENDAR = "master_calendar"
    INDIVIDUAL_MERITS = "individual_merits"
    BOND = "bond"
    CREDIBLE_FEAR_REVIEW = "credible_fear_review"
    REASONABLE_FEAR_REVIEW = "reasonable_fear_review"
    OTHER = "other"


class CaseChange(StrEnum):
    """What a ``case-updated`` changed."""

    HEARING_MOVED = "hearing_moved"
    TRANSFERRED = "transferred"
    COURT_CHANGED = "court_changed"
    CASE_TYPE_CHANGED = "case_type_changed"
    LANGUAGES_CHANGED = "languages_changed"
    COMPLEXITY_CHANGED = "complexity_changed"
    NEEDS_CHANGED = "needs_changed"
    CUSTODY_CHANGED = "custody_changed"
    REFERRAL_ADDED = "referral_added"
    OTHER = "other"


class CaseOutcome(StrEnum):
    RELIEF_GRANTED = "relief_granted"
    BOND_GRANTED = "bond_granted"
    PAROLED = "paroled"
    RELEASED = "released"
    TERMINATED = "terminated"
    ADMINISTRATIVELY_CLOSED = "administratively_closed"
    VOLUNTARY_DEPARTURE = "voluntary_departure"
    REMOVED = "removed"
    RELIEF_DENIED = "relief_denied"
    TRANSFERRED_OUT = "transferred_out"
    REPRESENTED_ELSEWHERE = "represented_elsewhere"
    WITHDRAWN = "withdrawn"
    OTHER = "other"


class VolunteerWithdrawalReason(StrEnum):
    NO_CAPACITY = "no_capacity"
    LEFT_NETWORK = "left_network"
    UNRESPONSIVE = "unresponsive"
    REMOVED_BY_STAFF = "removed_by_staff"
    OTHER = "other"


class FacilityStatus(StrEnum):
    OPEN = "open"
    PAUSED = "paused"


class FacilityPauseReason(StrEnum):
    PHONE_ACCESS_CUT = "phone_access_cut"
    VISITS_SUSPENDED = "visits_suspended"
    LOCKDOWN = "lockdown"
    OUTBREAK = "outbreak"
    MASS_TRANSFER = "mass_transfer"
    CLOSURE = "closure"
    STAFF_DECISION = "staff_decision"
    OTHER = "other"


class MatchConstraint(StrEnum):
    """A constraint that held for a proposal (its reasons)."""

    ROLE_FITS = "role_fits"
    LANGUAGE_SHARED = "language_shared"
    INTERPRETER_AVAILABLE = "interpreter_available"
    PRACTICE_AREA = "practice_area"
    EXPERIENCE_SUFFICIENT = "experience_sufficient"
    MENTOR_AVAILABLE = "mentor_available"
    BAR_ADMISSION = "bar_admission"
    FACILITY_REACHABLE = "facility_reachable"
    REMOTE_OK = "remote_ok"
    CAPACITY_AVAILABLE = "capacity_available"
    FACILITY_OPEN = "facility_open"
    NOT_DECLINED_BEFORE = "not_declined_before"
    STAFF_OVERRIDE = "staff_override"


class ScoreComponentName(StrEnum):
    LANGUAGE = "language"
    PRACTICE_AREA = "practice_area"
    EXPERIENCE = "experience"
    PROXIMITY = "proximity"
    LOAD = "load"
    URGENCY = "urgency"
    PARTNER_AFFINITY = "partner_affinity"
    MENTORING = "mentoring"


class DeclineReason(StrEnum):
    CONFLICT_OF_INTEREST = "conflict_of_interest"
    NO_CAPACITY = "no_capacity"
    OUTSIDE_EXPERTISE = "outside_expertise"
    LANGUAGE = "language"
    SCHEDULE = "schedule"
    DISTANCE = "distance"
    PERSONAL = "personal"
    OTHER = "other"


class RetractionReason(StrEnum):
    """Why matching withdrew an open proposal before the volunteer answered."""

    FILLED = "filled"
    """Another volunteer accepted first (urgent cases are offered to several at once)."""
    CASE_CLOSED = "case_closed"
    CASE_CHANGED = "case_changed"
    """A transfer or new facts mean the volunteer no longer fits."""
    VOLUNTEER_WITHDREW = "volunteer_withdrew"
    FACILITY_PAUSED = "facility_paused"
    REOPTIMISED = "reoptimised"
    """The global pass found a better assignment."""
    STAFF_OVERRIDE = "staff_override"


class EscalationCause(StrEnum):
    """Why a case is still without someone: what staff would have to find."""

    NO_VOLUNTEER = "no_volunteer"
    NO_LANGUAGE_MATCH = "no_language_match"
    NO_CAPACITY = "no_capacity"
    NO_PRACTICE_AREA = "no_practice_area"
    NO_MENTOR = "no_mentor"
    NO_FEDERAL_ADMISSION = "no_federal_admission"
    NO_REACH = "no_reach"
    NOT_AVAILABLE_IN_TIME = "not_available_in_time"
    FACILITY_PAUSED = "facility_paused"
    ALL_DECLINED = "all_declined"
    AWAITING_ANSWER = "awaiting_answer"
    """Proposals are out but nobody has answered yet."""


class MatchEndReason(StrEnum):
    CASE_CLOSED = "case_closed"
    VOLUNTEER_WITHDREW = "volunteer_withdrew"
    CONFLICT_DISCOVERED = "conflict_discovered"
    CLIENT_DECLINED = "client_declined"
    CASE_TRANSFERRED = "case_transferred"
    STAFF_OVERRIDE = "staff_override"
    OTHER = "other"


class EscalationLevel(IntEnum):
    """Days before the next hearing at which an unmatched case escalates (integers on the wire)."""

    DAYS_14 = 14
    DAYS_7 = 7
    DAYS_3 = 3


class NotificationChannel(StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"
    STAFF_INBOX = "staff_inbox"


class RecipientKind(StrEnum):
    VOLUNTEER = "volunteer"
    PARTNER = "partner"
    STAFF = "staff"


class DeliveryFailure(StrEnum):
    BOUNCED = "bounced"
    REJECTED = "rejected"
    INVALID_RECIPIENT = "invalid_recipient"
    TIMEOUT = "timeout"
    CONNECTION_ERROR = "connection_error"
    HTTP_ERROR = "http_error"
    OTHER = "other"
