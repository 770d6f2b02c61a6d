"""Escalations: the level a case reaches 14, 7 and 3 days before its hearing, once each, and what is
missing per role."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, timedelta

import pytest

from lastline_matching.domain import (
    CaseView,
    Context,
    Unmet,
    VolunteerView,
    causes,
    due,
    level_due,
    shortfall,
)
from lastline_shared.contracts.enums import (
    CaseType,
    EscalationCause,
    EscalationLevel,
    ExperienceLevel,
    PracticeArea,
    VolunteerRole,
)

TODAY = date(2026, 3, 2)
ATTORNEY = VolunteerRole.ATTORNEY
CONTEXT = Context(today=TODAY, mentor_available=True)
CASE = CaseView(
    id=uuid.UUID(int=1),
    facility_code="STWRTGA",
    court_code="LUM",
    case_type=CaseType.ASYLUM,
    languages=("hat",),
    next_hearing_date=TODAY + timedelta(days=7),
    federal_district="gamd",
)


def _volunteer(n: int, **changes: object) -> VolunteerView:
    base = VolunteerView(
        id=uuid.UUID(int=n),
        roles=frozenset({ATTORNEY}),
        languages=frozenset({"eng", "hat"}),
        experience_level=ExperienceLevel.EXPERIENCED,
        practice_areas=frozenset({PracticeArea.ASYLUM}),
        max_active_cases=2,
        remote=True,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("days", "raised", "level"),
    [
        (None, None, None),
        (30, None, None),
        (15, None, None),
        (14, None, 14),
        (10, None, 14),
        (10, 14, None),  # raised already
        (7, 14, 7),
        (5, None, 7),  # first seen at 5 days: straight to 7, not 14 then 7
        (3, 7, 3),
        (3, 3, None),
        (1, 7, 3),
        (0, 7, 3),  # the hearing is today: still the last level, if it was not raised
        (2, 3, None),
        (-1, None, None),  # the hearing has passed
    ],
)
def test_level_due(days: int | None, raised: int | None, level: int | None) -> None:
    assert level_due(days, raised) == level
    if level is not None:
        assert isinstance(level_due(days, raised), EscalationLevel)


def test_due_picks_the_cases_that_escalate_today() -> None:
    in_8 = replace(CASE, id=uuid.UUID(int=2), next_hearing_date=TODAY + timedelta(days=8))
    in_20 = replace(CASE, id=uuid.UUID(int=3), next_hearing_date=TODAY + timedelta(days=20))
    in_2 = replace(CASE, id=uuid.UUID(int=4), next_hearing_date=TODAY + timedelta(days=2))
    found = due([(in_8, None), (in_20, None), (in_2, 7), (CASE, 7)], TODAY)
    assert found == [(in_8, EscalationLevel.DAYS_14), (in_2, EscalationLevel.DAYS_3)]


def _causes(volunteers: list[VolunteerView], **ctx: object) -> tuple[EscalationCause, ...]:
    return shortfall(CASE, ATTORNEY, volunteers, replace(CONTEXT, **ctx)).causes  # type: ignore[arg-type]


def test_what_is_missing_is_the_furthest_constraint_anyone_reached() -> None:
    spanish = _volunteer(1, languages=frozenset({"spa"}))
    full = _volunteer(2, active_load=2)
    interpreter = _volunteer(3, roles=frozenset({VolunteerRole.INTERPRETER}))
    assert _causes([]) == (EscalationCause.NO_VOLUNTEER,)
    assert _causes([interpreter]) == (EscalationCause.NO_VOLUNTEER,)
    assert _causes([interpreter, spanish]) == (EscalationCause.NO_LANGUAGE_MATCH,)
    # Someone speaks Haitian Creole, but has no room: capacity is what is missing.
    assert _causes([spanish, full]) == (EscalationCause.NO_CAPACITY,)
    assert _causes([spanish, _volunteer(4, remote=False)]) == (EscalationCause.NO_REACH,)
    assert _causes([_volunteer(5, practice_areas=frozenset())]) == (EscalationCause.NO_PRACTICE_AREA,)
    novice = _volunteer(6, experience_level=ExperienceLevel.NOVICE)
    assert _causes([novice], mentor_available=False) == (EscalationCause.NO_MENTOR,)
    assert _causes([spanish, full], facility_paused=True) == (EscalationCause.FACILITY_PAUSED,)
    assert _causes([], facility_paused=True) == (EscalationCause.FACILITY_PAUSED,)
    assert _causes([], min_days_to_prepare=8) == (EscalationCause.NOT_AVAILABLE_IN_TIME,)


def test_everyone_who_fits_declined() -> None:
    fits = _volunteer(7)
    result = shortfall(CASE, ATTORNEY, [fits], replace(CONTEXT, declined=frozenset({fits.id})))
    assert result.causes == (EscalationCause.ALL_DECLINED,)
    assert result.furthest is Unmet.DECLINED_BEFORE


def test_no_habeas_counsel_admitted_in_the_district() -> None:
    habeas = replace(CASE, case_type=CaseType.FEDERAL_HABEAS)
    counsel = _volunteer(
        8, practice_areas=frozenset({PracticeArea.FEDERAL_HABEAS}), federal_courts=frozenset({"gand"})
    )
    assert shortfall(habeas, ATTORNEY, [counsel], CONTEXT).causes == (EscalationCause.NO_FEDERAL_ADMISSION,)


def test_someone_eligible_means_nothing_is_missing_but_an_answer() -> None:
    result = shortfall(CASE, ATTORNEY, [_volunteer(9), _volunteer(10, languages=frozenset({"spa"}))], CONTEXT)
    assert (result.causes, result.furthest, result.eligible) == ((), None, 1)
    waiting = shortfall(CASE, ATTORNEY, [_volunteer(9)], CONTEXT, proposals_open=2)
    assert waiting.causes == (EscalationCause.AWAITING_ANSWER,)


def test_causes_of_several_roles_are_listed_once() -> None:
    attorney = shortfall(CASE, ATTORNEY, [_volunteer(1, active_load=2)], CONTEXT, proposals_open=1)
    interpreter = shortfall(CASE, VolunteerRole.INTERPRETER, [], CONTEXT, proposals_open=1)
    assert causes([attorney, interpreter]) == (
        EscalationCause.NO_CAPACITY,
        EscalationCause.AWAITING_ANSWER,
        EscalationCause.NO_VOLUNTEER,
    )
