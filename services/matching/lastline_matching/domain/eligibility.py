"""Hard constraints: may this volunteer take this case in this role?

:func:`check` answers with the constraints that held (a proposal's reasons) or with the first one that
failed, as an :class:`Unmet` cause. Checks run in funnel order (the case's own state first, then
role, language, reach, competence, admission, capacity, and a previous decline last), so across all
volunteers the cause that got furthest says what the network is missing (see ``escalation.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from uuid import UUID

from lastline_matching.domain.model import CaseView, VolunteerView
from lastline_shared.contracts.enums import (
    CaseNeed,
    EscalationCause,
    ExperienceLevel,
    MatchConstraint,
    VolunteerRole,
)

CLIENT_FACING = frozenset(
    {
        VolunteerRole.ATTORNEY,
        VolunteerRole.ACCREDITED_REPRESENTATIVE,
        VolunteerRole.LAW_STUDENT,
        VolunteerRole.PARALEGAL,
        VolunteerRole.INTERPRETER,
        VolunteerRole.MEDICAL_EVALUATOR,
        VolunteerRole.PSYCH_EVALUATOR,
    }
)
"""Roles that talk to the client and visit (or call) the facility: language and reach apply."""
COUNSEL = frozenset({VolunteerRole.ATTORNEY, VolunteerRole.ACCREDITED_REPRESENTATIVE})
"""Roles that represent the client: competence (practice area, mentoring) and admission apply."""


class Unmet(StrEnum):
    """The first hard constraint that failed; members are in funnel order."""

    FACILITY_PAUSED = "facility_paused"
    NOT_AVAILABLE_IN_TIME = "not_available_in_time"
    """The hearing is closer than the days a volunteer needs to prepare."""
    NO_ROLE = "no_role"
    NO_LANGUAGE_MATCH = "no_language_match"
    NO_REACH = "no_reach"
    NO_PRACTICE_AREA = "no_practice_area"
    NO_COUNTRY_EXPERTISE = "no_country_expertise"
    NOVICE_ON_COMPLEX_CASE = "novice_on_complex_case"
    """A novice outside their practice area on a complex case: not even with a mentor."""
    NO_MENTOR = "no_mentor"
    """A novice, and no mentor has room."""
    NO_FEDERAL_ADMISSION = "no_federal_admission"
    NO_CAPACITY = "no_capacity"
    DECLINED_BEFORE = "declined_before"

    @property
    def stage(self) -> int:
        """Position in the funnel: a larger stage means the volunteer passed more constraints."""
        return _STAGES[self]

    @property
    def escalation_cause(self) -> EscalationCause:
        """The contract's word for what is missing when nobody gets past this constraint."""
        return _CAUSES[self]


_STAGES = {unmet: i for i, unmet in enumerate(Unmet)}
_CAUSES = {
    Unmet.FACILITY_PAUSED: EscalationCause.FACILITY_PAUSED,
    Unmet.NOT_AVAILABLE_IN_TIME: EscalationCause.NOT_AVAILABLE_IN_TIME,
    Unmet.NO_ROLE: EscalationCause.NO_VOLUNTEER,
    Unmet.NO_LANGUAGE_MATCH: EscalationCause.NO_LANGUAGE_MATCH,
    Unmet.NO_REACH: EscalationCause.NO_REACH,
    Unmet.NO_PRACTICE_AREA: EscalationCause.NO_PRACTICE_AREA,
    Unmet.NO_COUNTRY_EXPERTISE: EscalationCause.NO_PRACTICE_AREA,
    Unmet.NOVICE_ON_COMPLEX_CASE: EscalationCause.NO_PRACTICE_AREA,
    Unmet.NO_MENTOR: EscalationCause.NO_MENTOR,
    Unmet.NO_FEDERAL_ADMISSION: EscalationCause.NO_FEDERAL_ADMISSION,
    Unmet.NO_CAPACITY: EscalationCause.NO_CAPACITY,
    Unmet.DECLINED_BEFORE: EscalationCause.ALL_DECLINED,
}


@dataclass(frozen=True, slots=True)
class Context:
    """What a decision about one case knows beyond the case and the volunteer."""

    today: date
    facility_paused: bool = False
    declined: frozenset[UUID] = frozenset()
    """Volunteers who declined this case: never offered it again."""
    interpreter_available: bool = False
    """An interpreter is placed on the case (or staff have one): counsel need not share a language."""
    mentor_available: bool = False
    """Some mentor has room for one more mentee: novices may be placed."""
    min_days_to_prepare: int = 1
    """A volunteer needs the hearing at least this many days away to be of use."""


@dataclass(frozen=True, slots=True)
class Eligible:
    reasons: tuple[MatchConstraint, ...]
    """The constraints that held, for the proposal."""
    mentor_needed: bool = False
    """A novice: pair a mentor on acceptance."""


@dataclass(frozen=True, slots=True)
class Ineligible:
    unmet: Unmet


Verdict = Eligible | Ineligible


def needs_shared_language(role: VolunteerRole, context: Context) -> bool:
    """Interpreters always speak the client's language; other client-facing roles unless an interpreter
    is there."""
    return role is VolunteerRole.INTERPRETER or (role in CLIENT_FACING and not context.interpreter_available)


def hearing_too_soon(case: CaseView, context: Context) -> bool:
    days = case.days_to_hearing(context.today)
    return days is not None and days < context.min_days_to_prepare


def check(case: CaseView, volunteer: VolunteerView, role: VolunteerRole, context: Context) -> Verdict:
    """The hard constraints, in funnel order: the reasons if all hold, else the first that failed."""
    if context.facility_paused:
        return Ineligible(Unmet.FACILITY_PAUSED)
    if hearing_too_soon(case, context):
        return Ineligible(Unmet.NOT_AVAILABLE_IN_TIME)
    if role not in volunteer.roles:
        return Ineligible(Unmet.NO_ROLE)
    reasons = [MatchConstraint.FACILITY_OPEN, MatchConstraint.ROLE_FITS]

    if role in CLIENT_FACING:
        if not volunteer.languages.isdisjoint(case.languages):
            reasons.append(MatchConstraint.LANGUAGE_SHARED)
        elif needs_shared_language(role, context):
            return Ineligible(Unmet.NO_LANGUAGE_MATCH)
        else:
            reasons.append(MatchConstraint.INTERPRETER_AVAILABLE)
        if case.facility_code in volunteer.facilities_reachable:
            reasons.append(MatchConstraint.FACILITY_REACHABLE)
        elif volunteer.remote:
            reasons.append(MatchConstraint.REMOTE_OK)
        else:
            return Ineligible(Unmet.NO_REACH)

    mentor_needed = False
    if role in COUNSEL:
        competence = _competence(case, volunteer, context)
        if isinstance(competence, Ineligible):
            return competence
        reasons.extend(competence.reasons)
        mentor_needed = competence.mentor_needed
        if case.needs_federal_admission:
            if case.federal_district is None or case.federal_district not in volunteer.federal_courts:
                return Ineligible(Unmet.NO_FEDERAL_ADMISSION)
            reasons.append(MatchConstraint.BAR_ADMISSION)
    elif role is VolunteerRole.COUNTRY_CONDITIONS_EXPERT and case.country_conditions:
        if volunteer.countries_of_expertise.isdisjoint(case.country_conditions):
            return Ineligible(Unmet.NO_COUNTRY_EXPERTISE)
        reasons.append(MatchConstraint.EXPERIENCE_SUFFICIENT)

    if volunteer.active_load >= volunteer.max_active_cases:
        return Ineligible(Unmet.NO_CAPACITY)
    reasons.append(MatchConstraint.CAPACITY_AVAILABLE)
    if volunteer.id in context.declined:
        return Ineligible(Unmet.DECLINED_BEFORE)
    reasons.append(MatchConstraint.NOT_DECLINED_BEFORE)
    return Eligible(tuple(reasons), mentor_needed)


def screen(case: CaseView, role: VolunteerRole, context: Context) -> Callable[[VolunteerView], bool] | None:
    """:func:`check`'s rules compiled for one case and role into a fast yes/no (no reasons), for ranking
    hundreds of candidates; None when nobody can pass (paused facility, hearing too soon)."""
    if context.facility_paused or hearing_too_soon(case, context):
        return None
    languages = frozenset(case.languages)
    facility = case.facility_code
    facing = role in CLIENT_FACING
    shared_language = needs_shared_language(role, context)
    counsel = role in COUNSEL
    area = case.case_type.practice_area
    complex_case = case.complex
    mentor = context.mentor_available
    district = case.federal_district if case.needs_federal_admission else None
    admission = case.needs_federal_admission
    countries = case.country_conditions if role is VolunteerRole.COUNTRY_CONDITIONS_EXPERT else frozenset()
    declined = context.declined
    novice = ExperienceLevel.NOVICE

    def eligible(v: VolunteerView) -> bool:
        if role not in v.roles or v.active_load >= v.max_active_cases or v.id in declined:
            return False
        if facing:
            if shared_language and languages.isdisjoint(v.languages):
                return False
            if not v.remote and facility not in v.facilities_reachable:
                return False
        if counsel:
            in_area = area in v.practice_areas
            if v.experience_level is novice:
                if not mentor or (complex_case and not in_area):
                    return False
            elif not in_area:
                return False
            if admission and (district is None or district not in v.federal_courts):
                return False
        return not countries or not countries.isdisjoint(v.countries_of_expertise)

    return eligible


def _competence(case: CaseView, volunteer: VolunteerView, context: Context) -> Verdict:
    """The case type in the practice areas, or a novice learning it on a simple case; a novice always
    has a mentor, so never works alone, and never outside their areas on a complex case."""
    in_area = case.case_type.practice_area in volunteer.practice_areas
    if not volunteer.novice:
        if not in_area:
            return Ineligible(Unmet.NO_PRACTICE_AREA)
        return Eligible((MatchConstraint.PRACTICE_AREA, MatchConstraint.EXPERIENCE_SUFFICIENT))
    if not in_area and case.complex:
        return Ineligible(Unmet.NOVICE_ON_COMPLEX_CASE)
    if not context.mentor_available:
        return Ineligible(Unmet.NO_MENTOR)
    if in_area:
        return Eligible((MatchConstraint.PRACTICE_AREA, MatchConstraint.MENTOR_AVAILABLE), mentor_needed=True)
    return Eligible((MatchConstraint.MENTOR_AVAILABLE,), mentor_needed=True)


def roles_needed(
    case: CaseView, *, counsel_speaks_client_language: bool | None = None
) -> tuple[VolunteerRole, ...]:
    """Counsel first, then what the case's needs name; an interpreter too when the placed counsel
    (``counsel_speaks_client_language`` is False) shares no language with the client."""
    roles = [VolunteerRole.ATTORNEY, *(need.role for need in sorted(case.needs))]
    if counsel_speaks_client_language is False and CaseNeed.INTERPRETER not in case.needs:
        roles.append(VolunteerRole.INTERPRETER)
    return tuple(roles)
