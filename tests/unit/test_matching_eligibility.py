"""Matching's hard constraints: each one alone, their funnel order, and the views built from events."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import date, timedelta
from typing import TypeVar

import pytest

from lastline_matching.domain import (
    CaseView,
    Context,
    Eligible,
    FacilityState,
    Ineligible,
    Unmet,
    VolunteerView,
    check,
    roles_needed,
    screen,
)
from lastline_shared.contracts import examples
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.enums import (
    CaseNeed,
    CaseType,
    ComplexityFlag,
    EscalationCause,
    ExperienceLevel,
    FacilityPauseReason,
    FacilityStatus,
    MatchConstraint,
    PracticeArea,
    VolunteerRole,
)
from lastline_shared.contracts.facilities import FacilityStatusChanged
from lastline_shared.contracts.volunteers import VolunteerRegistered

TODAY = date(2026, 3, 2)
T = TypeVar("T")
ATTORNEY = VolunteerRole.ATTORNEY


def _case(**changes: object) -> CaseView:
    base = CaseView(
        id=uuid.UUID(int=1),
        facility_code="STWRTGA",
        court_code="LUM",
        case_type=CaseType.ASYLUM,
        languages=("mam", "spa"),
        next_hearing_date=TODAY + timedelta(days=20),
        detained_since=TODAY - timedelta(days=90),
        referring_partners=frozenset({"sifi"}),
        federal_district="gamd",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _volunteer(**changes: object) -> VolunteerView:
    base = VolunteerView(
        id=uuid.UUID(int=2),
        roles=frozenset({ATTORNEY}),
        languages=frozenset({"eng", "spa"}),
        experience_level=ExperienceLevel.EXPERIENCED,
        practice_areas=frozenset({PracticeArea.ASYLUM, PracticeArea.BOND}),
        max_active_cases=3,
        active_load=1,
        facilities_reachable=frozenset({"STWRTGA"}),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


CONTEXT = Context(today=TODAY, mentor_available=True)


def _unmet(case: CaseView, volunteer: VolunteerView, role: VolunteerRole = ATTORNEY, **ctx: object) -> Unmet:
    verdict = check(case, volunteer, role, replace(CONTEXT, **ctx))  # type: ignore[arg-type]
    assert isinstance(verdict, Ineligible), verdict
    return verdict.unmet


def _reasons(
    case: CaseView, volunteer: VolunteerView, role: VolunteerRole = ATTORNEY, **ctx: object
) -> Eligible:
    verdict = check(case, volunteer, role, replace(CONTEXT, **ctx))  # type: ignore[arg-type]
    assert isinstance(verdict, Eligible), verdict
    return verdict


def test_an_experienced_attorney_who_fits_gets_every_reason() -> None:
    verdict = _reasons(_case(), _volunteer())
    assert verdict.reasons == (
        MatchConstraint.FACILITY_OPEN,
        MatchConstraint.ROLE_FITS,
        MatchConstraint.LANGUAGE_SHARED,
        MatchConstraint.FACILITY_REACHABLE,
        MatchConstraint.PRACTICE_AREA,
        MatchConstraint.EXPERIENCE_SUFFICIENT,
        MatchConstraint.CAPACITY_AVAILABLE,
        MatchConstraint.NOT_DECLINED_BEFORE,
    )
    assert not verdict.mentor_needed


def test_role() -> None:
    assert _unmet(_case(), _volunteer(roles=frozenset({VolunteerRole.INTERPRETER}))) is Unmet.NO_ROLE


def test_language_counsel_needs_a_shared_language_unless_an_interpreter_is_there() -> None:
    french = _volunteer(languages=frozenset({"eng", "fra"}))
    assert _unmet(_case(), french) is Unmet.NO_LANGUAGE_MATCH
    with_interpreter = _reasons(_case(), french, interpreter_available=True)
    assert MatchConstraint.INTERPRETER_AVAILABLE in with_interpreter.reasons
    assert MatchConstraint.LANGUAGE_SHARED not in with_interpreter.reasons
    # Any of the client's languages will do, not only the preferred one.
    assert MatchConstraint.LANGUAGE_SHARED in _reasons(_case(languages=("mam", "spa")), _volunteer()).reasons


def test_language_an_interpreter_always_speaks_the_clients_language() -> None:
    interpreter = _volunteer(
        roles=frozenset({VolunteerRole.INTERPRETER}), languages=frozenset({"eng", "fra"})
    )
    role = VolunteerRole.INTERPRETER
    assert _unmet(_case(), interpreter, role, interpreter_available=True) is Unmet.NO_LANGUAGE_MATCH
    assert isinstance(
        check(_case(), replace(interpreter, languages=frozenset({"mam"})), role, CONTEXT), Eligible
    )


def test_language_and_reach_do_not_bind_a_country_conditions_expert() -> None:
    expert = _volunteer(
        roles=frozenset({VolunteerRole.COUNTRY_CONDITIONS_EXPERT}),
        languages=frozenset({"eng"}),
        facilities_reachable=frozenset(),
        countries_of_expertise=frozenset({"GT"}),
    )
    role = VolunteerRole.COUNTRY_CONDITIONS_EXPERT
    assert isinstance(check(_case(country_conditions=frozenset({"GT"})), expert, role, CONTEXT), Eligible)
    assert _unmet(_case(country_conditions=frozenset({"HN"})), expert, role) is Unmet.NO_COUNTRY_EXPERTISE


def test_capacity_counts_open_proposals() -> None:
    assert _unmet(_case(), _volunteer(active_load=3)) is Unmet.NO_CAPACITY
    assert _unmet(_case(), _volunteer(max_active_cases=0, active_load=0)) is Unmet.NO_CAPACITY
    assert MatchConstraint.CAPACITY_AVAILABLE in _reasons(_case(), _volunteer(active_load=2)).reasons


def test_competence_practice_area() -> None:
    assert _unmet(_case(case_type=CaseType.CANCELLATION_OF_REMOVAL), _volunteer()) is Unmet.NO_PRACTICE_AREA
    expert = _volunteer(experience_level=ExperienceLevel.EXPERT)
    assert _unmet(_case(case_type=CaseType.BIA_APPEAL), expert) is Unmet.NO_PRACTICE_AREA


def test_competence_a_novice_only_with_a_mentor() -> None:
    novice = _volunteer(experience_level=ExperienceLevel.NOVICE)
    assert _unmet(_case(), novice, mentor_available=False) is Unmet.NO_MENTOR
    verdict = _reasons(_case(), novice)
    assert verdict.mentor_needed
    assert MatchConstraint.MENTOR_AVAILABLE in verdict.reasons
    # A novice may learn a new area, on a simple case, with a mentor.
    learning = _reasons(_case(case_type=CaseType.CANCELLATION_OF_REMOVAL), novice)
    assert learning.mentor_needed
    assert MatchConstraint.PRACTICE_AREA not in learning.reasons


@pytest.mark.parametrize(
    "complex_case",
    [
        {"complexity_flags": frozenset({ComplexityFlag.CRIMINAL_HISTORY})},
        {"complexity_flags": frozenset({ComplexityFlag.APPEAL})},
        {"case_type": CaseType.BIA_APPEAL},
        {"case_type": CaseType.PETITION_FOR_REVIEW},
    ],
)
def test_competence_never_a_novice_alone_on_a_complex_case(complex_case: dict[str, object]) -> None:
    novice = _volunteer(experience_level=ExperienceLevel.NOVICE, practice_areas=frozenset())
    case = _case(**complex_case)
    assert case.complex
    assert _unmet(case, novice) is Unmet.NOVICE_ON_COMPLEX_CASE
    # In their own area, a novice takes it only with a mentor.
    own = replace(novice, practice_areas=frozenset({case.case_type.practice_area}))
    assert _unmet(case, own, mentor_available=False) is Unmet.NO_MENTOR
    assert _reasons(case, own).mentor_needed


def test_federal_habeas_needs_admission_in_the_facilitys_district() -> None:
    habeas = _case(
        case_type=CaseType.FEDERAL_HABEAS, complexity_flags=frozenset({ComplexityFlag.FEDERAL_HABEAS})
    )
    counsel = _volunteer(practice_areas=frozenset({PracticeArea.FEDERAL_HABEAS}))
    assert _unmet(habeas, counsel) is Unmet.NO_FEDERAL_ADMISSION
    assert (
        _unmet(habeas, replace(counsel, federal_courts=frozenset({"gand", "ca11"})))
        is Unmet.NO_FEDERAL_ADMISSION
    )
    admitted = _reasons(habeas, replace(counsel, federal_courts=frozenset({"gamd"})))
    assert MatchConstraint.BAR_ADMISSION in admitted.reasons
    # The flag alone (a removal case with a habeas petition pending) asks for the same.
    flagged = _case(complexity_flags=frozenset({ComplexityFlag.FEDERAL_HABEAS}))
    assert _unmet(flagged, _volunteer()) is Unmet.NO_FEDERAL_ADMISSION
    assert _unmet(
        replace(habeas, federal_district=None), replace(counsel, federal_courts=frozenset({"gamd"}))
    ) is (Unmet.NO_FEDERAL_ADMISSION)


def test_reach_in_person_or_remote() -> None:
    far = _volunteer(facilities_reachable=frozenset({"KRO"}))
    assert _unmet(_case(), far) is Unmet.NO_REACH
    assert MatchConstraint.REMOTE_OK in _reasons(_case(), replace(far, remote=True)).reasons
    assert MatchConstraint.FACILITY_REACHABLE in _reasons(_case(), _volunteer(remote=True)).reasons


def test_availability_before_the_hearing() -> None:
    soon = _case(next_hearing_date=TODAY + timedelta(days=4))
    assert isinstance(check(soon, _volunteer(), ATTORNEY, CONTEXT), Eligible)
    assert _unmet(soon, _volunteer(), min_days_to_prepare=5) is Unmet.NOT_AVAILABLE_IN_TIME
    assert _unmet(_case(next_hearing_date=TODAY), _volunteer()) is Unmet.NOT_AVAILABLE_IN_TIME
    assert (
        _unmet(_case(next_hearing_date=TODAY - timedelta(days=1)), _volunteer())
        is Unmet.NOT_AVAILABLE_IN_TIME
    )
    assert isinstance(check(_case(next_hearing_date=None), _volunteer(), ATTORNEY, CONTEXT), Eligible)


def test_declined_before_and_paused_facility() -> None:
    volunteer = _volunteer()
    assert _unmet(_case(), volunteer, declined=frozenset({volunteer.id})) is Unmet.DECLINED_BEFORE
    assert _unmet(_case(), volunteer, facility_paused=True) is Unmet.FACILITY_PAUSED


def test_the_first_failed_constraint_in_funnel_order() -> None:
    hopeless = _volunteer(languages=frozenset({"eng"}), facilities_reachable=frozenset(), active_load=3)
    assert _unmet(_case(), hopeless) is Unmet.NO_LANGUAGE_MATCH
    assert _unmet(_case(), hopeless, facility_paused=True) is Unmet.FACILITY_PAUSED
    full_and_declined = _volunteer(active_load=3)
    assert _unmet(_case(), full_and_declined, declined=frozenset({full_and_declined.id})) is Unmet.NO_CAPACITY
    assert [u.stage for u in Unmet] == list(range(len(Unmet)))


def test_every_cause_says_what_an_escalation_is_missing() -> None:
    assert {u: u.escalation_cause for u in Unmet}[
        Unmet.NO_LANGUAGE_MATCH
    ] is EscalationCause.NO_LANGUAGE_MATCH
    assert Unmet.NO_CAPACITY.escalation_cause is EscalationCause.NO_CAPACITY
    assert Unmet.FACILITY_PAUSED.escalation_cause is EscalationCause.FACILITY_PAUSED
    assert Unmet.DECLINED_BEFORE.escalation_cause is EscalationCause.ALL_DECLINED
    assert Unmet.NO_ROLE.escalation_cause is EscalationCause.NO_VOLUNTEER


def test_roles_needed() -> None:
    needs = frozenset({CaseNeed.PSYCH_EVALUATOR, CaseNeed.INTERPRETER})
    assert roles_needed(_case(needs=needs)) == (
        ATTORNEY,
        VolunteerRole.INTERPRETER,
        VolunteerRole.PSYCH_EVALUATOR,
    )
    assert roles_needed(_case(), counsel_speaks_client_language=False) == (
        ATTORNEY,
        VolunteerRole.INTERPRETER,
    )
    assert roles_needed(_case(), counsel_speaks_client_language=True) == (ATTORNEY,)


def _random_pair(rng: random.Random) -> tuple[CaseView, VolunteerView, VolunteerRole, Context]:
    roles = list(VolunteerRole)
    languages = ["spa", "mam", "fra", "hat", "eng"]
    facilities = ["STWRTGA", "KRO", "IRWINGA"]
    case = _case(
        case_type=rng.choice(list(CaseType)),
        languages=tuple(rng.sample(languages, rng.randint(1, 2))),
        facility_code=rng.choice(facilities),
        complexity_flags=frozenset(rng.sample(list(ComplexityFlag), rng.randint(0, 2))),
        country_conditions=frozenset(rng.sample(["GT", "HN"], rng.randint(0, 1))),
        next_hearing_date=rng.choice([None, TODAY + timedelta(days=rng.randint(-1, 10))]),
        federal_district=rng.choice(["gamd", None]),
    )
    volunteer = _volunteer(
        id=uuid.UUID(int=rng.getrandbits(128)),
        roles=frozenset(rng.sample(roles, rng.randint(1, 2))),
        languages=frozenset(rng.sample(languages, rng.randint(1, 3))),
        experience_level=rng.choice(list(ExperienceLevel)),
        practice_areas=frozenset(rng.sample(list(PracticeArea), rng.randint(0, 8))),
        max_active_cases=rng.randint(0, 3),
        active_load=rng.randint(0, 3),
        facilities_reachable=frozenset(rng.sample(facilities, rng.randint(0, 2))),
        remote=rng.random() < 0.3,
        federal_courts=frozenset(rng.sample(["gamd", "gand"], rng.randint(0, 2))),
        countries_of_expertise=frozenset(rng.sample(["GT", "HN"], rng.randint(0, 1))),
    )
    context = Context(
        today=TODAY,
        facility_paused=rng.random() < 0.05,
        declined=frozenset({volunteer.id}) if rng.random() < 0.1 else frozenset(),
        interpreter_available=rng.random() < 0.3,
        mentor_available=rng.random() < 0.7,
        min_days_to_prepare=rng.randint(0, 3),
    )
    return case, volunteer, rng.choice(roles), context


def test_screen_agrees_with_check() -> None:
    rng = random.Random(4)
    agreed = 0
    for _ in range(20_000):
        case, volunteer, role, context = _random_pair(rng)
        eligible = screen(case, role, context)
        fast = eligible is not None and eligible(volunteer)
        assert fast == isinstance(check(case, volunteer, role, context), Eligible), (case, volunteer, role)
        agreed += fast
    assert agreed > 200  # the random pairs reach the eligible side too


def test_views_from_the_contract_events() -> None:
    volunteer_event = _example(VolunteerRegistered)
    view = VolunteerView.from_profile(volunteer_event, active_load=2, mentor_load=1)
    assert view.id == volunteer_event.volunteer_id
    assert view.languages == frozenset(volunteer_event.languages)
    assert view.experience_level is volunteer_event.experience_level
    assert view.active_load == 2
    assert view.registered_by == (
        volunteer_event.registered_by.partner_id if volunteer_event.registered_by else None
    )
    assert view.mentor_capacity == (3 if volunteer_event.can_mentor else 0)

    case_event = _example(CaseOpened)
    case = CaseView.from_snapshot(case_event)
    assert case.id == case_event.case_id
    assert case.languages == tuple(case_event.languages)
    assert case.federal_district == "gamd"  # Stewart, Lumpkin GA: M.D. Ga.
    assert case.referring_partners == {r.partner_id for r in case_event.referrals}
    assert CaseView.from_facts(case_event.model_dump(mode="json")) == case


def test_volunteer_view_from_a_stored_row() -> None:
    row = {
        "volunteer_id": uuid.UUID(int=5),
        "roles": ["attorney", "mentor"],
        "languages": ["eng", "spa"],
        "experience_level": "expert",
        "practice_areas": ["asylum"],
        "federal_courts": ["gamd"],
        "eoir_registered": True,
        "max_active_cases": 4,
        "active_cases": 2,
        "reserved": 1,
        "facilities_reachable": ["STWRTGA"],
        "remote": False,
        "wants_mentor": False,
        "can_mentor": True,
        "mentees": 2,
        "countries_of_expertise": [],
        "registered_partner": "sifi",
    }
    view = VolunteerView.from_row(row, mentor_capacity=3)
    assert (view.active_load, view.remaining, view.mentor_room) == (3, 1, True)
    assert view.roles == {VolunteerRole.ATTORNEY, VolunteerRole.MENTOR}
    assert not VolunteerView.from_row(row | {"mentees": 3}, mentor_capacity=3).mentor_room


def test_facility_state_from_its_event() -> None:
    paused = FacilityStatusChanged(
        facility_code="STWRTGA",
        status=FacilityStatus.PAUSED,
        reason=FacilityPauseReason.LOCKDOWN,
        effective_at=examples.NOW,
    )
    assert FacilityState.from_event(paused) == FacilityState("STWRTGA", True, FacilityPauseReason.LOCKDOWN)
    opened = paused.model_copy(update={"status": FacilityStatus.OPEN, "reason": None})
    assert not FacilityState.from_event(opened).paused


def _example(kind: type[T]) -> T:
    return next(e for e in examples.example_events() if isinstance(e, kind))
