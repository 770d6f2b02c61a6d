"""Matching's score: each component, the weighted sum the contract defines, ranking, and the two fast
paths (``rank``'s compiled one, the numpy ``VolunteerPool``) held equal to the plain definitions."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest

from lastline_matching.domain import (
    COMPONENTS,
    CaseView,
    Context,
    Eligible,
    VolunteerPool,
    VolunteerView,
    Weights,
    check,
    rank,
    score,
)
from lastline_matching.domain import scoring as s
from lastline_shared.contracts.enums import (
    CaseType,
    ComplexityFlag,
    ExperienceLevel,
    PracticeArea,
    ScoreComponentName,
    VolunteerRole,
)
from lastline_shared.contracts.matches import MatchProposed

TODAY = date(2026, 3, 2)
ATTORNEY = VolunteerRole.ATTORNEY
CONTEXT = Context(today=TODAY, mentor_available=True)


def _case(**changes: object) -> CaseView:
    base = CaseView(
        id=uuid.UUID(int=1),
        facility_code="STWRTGA",
        court_code="LUM",
        case_type=CaseType.ASYLUM,
        languages=("mam", "spa"),
        next_hearing_date=TODAY + timedelta(days=20),
        referring_partners=frozenset({"sifi"}),
        federal_district="gamd",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def _volunteer(n: int = 2, **changes: object) -> VolunteerView:
    base = VolunteerView(
        id=uuid.UUID(int=n),
        roles=frozenset({ATTORNEY}),
        languages=frozenset({"eng", "spa"}),
        experience_level=ExperienceLevel.EXPERIENCED,
        practice_areas=frozenset({PracticeArea.ASYLUM}),
        max_active_cases=4,
        active_load=1,
        facilities_reachable=frozenset({"STWRTGA"}),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_urgency_from_days_to_hearing_and_days_detained() -> None:
    assert s.urgency(_case(next_hearing_date=TODAY + timedelta(days=3)), TODAY) == 0.75
    assert s.urgency(_case(next_hearing_date=TODAY + timedelta(days=60)), TODAY) == 0.0
    assert s.urgency(_case(next_hearing_date=None), TODAY) == 0.0
    month = s.urgency(_case(next_hearing_date=TODAY + timedelta(days=30)), TODAY)
    week = s.urgency(_case(next_hearing_date=TODAY + timedelta(days=7)), TODAY)
    assert 0 < month < week < 0.75
    detained = _case(next_hearing_date=TODAY + timedelta(days=3), detained_since=TODAY - timedelta(days=400))
    assert s.urgency(detained, TODAY) == 1.0
    assert s.urgency(replace(detained, detained_since=TODAY - timedelta(days=90)), TODAY) == 0.875


def test_experience_fit_matches_the_case() -> None:
    levels = list(ExperienceLevel)
    bond = _case(case_type=CaseType.BOND)  # calls for rank 1
    assert [
        s.experience_fit(bond, _volunteer(experience_level=lv), ATTORNEY) for lv in levels
    ] == pytest.approx([0.7, 1.0, 0.9, 0.8])
    habeas = _case(case_type=CaseType.FEDERAL_HABEAS)  # rank 3
    assert s.difficulty(habeas) == 3
    assert s.experience_fit(
        habeas, _volunteer(experience_level=ExperienceLevel.NOVICE), ATTORNEY
    ) == pytest.approx(0.1)
    assert s.difficulty(_case(complexity_flags=frozenset({ComplexityFlag.CRIMINAL_HISTORY}))) == 3
    assert (
        s.experience_fit(
            _case(), _volunteer(experience_level=ExperienceLevel.EXPERT), VolunteerRole.INTERPRETER
        )
        == 1
    )


def test_language_fluency_prefers_the_clients_first_language() -> None:
    case = _case(languages=("mam", "spa", "eng"))
    assert s.language_fluency(case, _volunteer(languages=frozenset({"mam"}))) == 1.0
    assert s.language_fluency(case, _volunteer(languages=frozenset({"spa"}))) == 0.8
    assert s.language_fluency(case, _volunteer(languages=frozenset({"eng"}))) == pytest.approx(0.6)
    assert s.language_fluency(case, _volunteer(languages=frozenset({"fra"}))) == 0.0


def test_load_balance_proximity_partner_and_mentoring() -> None:
    assert s.load_balance(_volunteer(active_load=1, max_active_cases=4)) == 0.75
    assert s.load_balance(_volunteer(active_load=0, max_active_cases=0)) == 0.0
    case = _case()
    assert s.proximity(case, _volunteer()) == 1.0
    near = s.proximity(case, _volunteer(facilities_reachable=frozenset({"IRWINGA"}), remote=True))  # ~160 km
    far = s.proximity(case, _volunteer(facilities_reachable=frozenset({"CSCNWWA"}), remote=True))  # Tacoma
    assert 0.3 < near < 0.5
    assert far == 0.0
    assert s.proximity(case, _volunteer(facilities_reachable=frozenset(), remote=True)) == 0.0
    assert s.facility_distance_km("STWRTGA", "NOPE") == float("inf")
    assert s.partner_affinity(case, _volunteer(registered_by="sifi")) == 1.0
    assert s.partner_affinity(case, _volunteer(registered_by="other")) == 0.0
    assert s.partner_affinity(case, _volunteer()) == 0.0
    novice = _volunteer(experience_level=ExperienceLevel.NOVICE, wants_mentor=True)
    assert s.mentoring(novice, ATTORNEY, CONTEXT) == 1.0
    assert s.mentoring(novice, ATTORNEY, replace(CONTEXT, mentor_available=False)) == 0.0
    assert s.mentoring(_volunteer(), ATTORNEY, CONTEXT) == 0.0


def test_score_is_the_contracts_weighted_mean_of_named_components() -> None:
    weights = Weights(language=3, urgency=0.5)
    scored = score(_case(), _volunteer(registered_by="sifi"), ATTORNEY, CONTEXT, weights)
    components = scored.components
    assert [c.factor for c in components] == list(ScoreComponentName)
    assert {c.factor for c in components} == set(COMPONENTS)
    assert all(0 <= c.value <= 1 for c in components)
    mean = sum(c.weight * c.value for c in components) / sum(c.weight for c in components)
    assert scored.score == pytest.approx(mean, abs=1e-4)
    assert components[0].factor is ScoreComponentName.LANGUAGE
    assert components[0].weight == 3.0
    # What a proposal publishes validates against the contract.
    MatchProposed(
        case_id=uuid.UUID(int=1),
        volunteer_id=uuid.UUID(int=2),
        role=ATTORNEY,
        proposal_id=uuid.UUID(int=3),
        reasons=("role_fits",),
        score=round(scored.score, 4),
        score_components=components,
        expires_at="2026-03-04T00:00:00Z",
    )


def test_weights_are_checked() -> None:
    with pytest.raises(ValueError, match="weights"):
        Weights(load=-1)
    with pytest.raises(ValueError, match="weights"):
        Weights(**dict.fromkeys(("language", "practice_area", "experience", "proximity", "load"), 0.0),
                urgency=0, partner_affinity=0, mentoring=0)  # fmt: skip


def test_rank_puts_the_best_first_with_reasons_and_skips_the_ineligible() -> None:
    case = _case()
    best = _volunteer(5, languages=frozenset({"mam", "spa"}), registered_by="sifi")
    good = _volunteer(4)
    busy = _volunteer(3, active_load=3)
    full = _volunteer(6, active_load=4)
    french = _volunteer(7, languages=frozenset({"fra"}))
    ranked = rank(case, [full, busy, good, french, best], ATTORNEY, CONTEXT)
    assert [r.volunteer for r in ranked] == [best, good, busy]
    assert ranked[0].score > ranked[1].score > ranked[2].score
    assert ranked[0].reasons == check(case, best, ATTORNEY, CONTEXT).reasons  # type: ignore[union-attr]
    assert [r.volunteer for r in rank(case, [full, busy, good, best], ATTORNEY, CONTEXT, limit=2)] == [
        best,
        good,
    ]
    assert rank(case, [best], ATTORNEY, replace(CONTEXT, facility_paused=True)) == []


def test_rank_with_dual_prices_takes_a_scarce_volunteer_last_and_keeps_the_score() -> None:
    case = _case()
    scarce = _volunteer(5, languages=frozenset({"mam", "spa"}))
    plain = _volunteer(4)
    assert [r.volunteer for r in rank(case, [scarce, plain], ATTORNEY, CONTEXT)] == [scarce, plain]
    priced = rank(case, [scarce, plain], ATTORNEY, CONTEXT, prices={scarce.id: 3.0})
    assert [r.volunteer for r in priced] == [plain, scarce]
    assert priced[1].score == score(case, scarce, ATTORNEY, CONTEXT).score  # the price is not published


def test_rank_breaks_ties_by_the_smaller_id_and_flags_novices() -> None:
    twins = [_volunteer(n) for n in (9, 3, 7)]
    assert [r.volunteer.id.int for r in rank(_case(), twins, ATTORNEY, CONTEXT)] == [3, 7, 9]
    novice = _volunteer(8, experience_level=ExperienceLevel.NOVICE)
    (ranked,) = rank(_case(case_type=CaseType.BOND), [novice], ATTORNEY, CONTEXT)
    assert ranked.mentor_needed


def _random_network(rng: random.Random, n: int) -> tuple[list[CaseView], list[VolunteerView]]:
    languages = ["spa", "mam", "fra", "hat", "eng", "por"]
    facilities = ["STWRTGA", "KRO", "IRWINGA", "CSCNWWA", "FIPCMGA"]
    roles = [ATTORNEY, VolunteerRole.INTERPRETER, VolunteerRole.COUNTRY_CONDITIONS_EXPERT]
    cases = [
        _case(
            id=uuid.UUID(int=rng.getrandbits(128)),
            case_type=rng.choice(list(CaseType)),
            languages=tuple(rng.sample(languages, rng.randint(1, 3))),
            facility_code=rng.choice(facilities),
            complexity_flags=frozenset(rng.sample(list(ComplexityFlag), rng.randint(0, 2))),
            country_conditions=frozenset(rng.sample(["GT", "HN"], rng.randint(0, 1))),
            next_hearing_date=rng.choice([None, TODAY + timedelta(days=rng.randint(0, 70))]),
            detained_since=rng.choice([None, TODAY - timedelta(days=rng.randint(0, 300))]),
            referring_partners=frozenset(rng.sample(["a", "b", "c"], rng.randint(1, 2))),
            federal_district=rng.choice(["gamd", "flsd"]),
        )
        for _ in range(n)
    ]
    volunteers = [
        _volunteer(
            id=uuid.UUID(int=rng.getrandbits(128)),
            roles=frozenset(rng.sample(roles, rng.randint(1, 2))),
            languages=frozenset(rng.sample(languages, rng.randint(1, 3))),
            experience_level=rng.choice(list(ExperienceLevel)),
            practice_areas=frozenset(rng.sample(list(PracticeArea), rng.randint(0, 10))),
            max_active_cases=rng.randint(0, 4),
            active_load=rng.randint(0, 3),
            facilities_reachable=frozenset(rng.sample(facilities, rng.randint(0, 2))),
            remote=rng.random() < 0.5,
            federal_courts=frozenset(rng.sample(["gamd", "flsd"], rng.randint(0, 1))),
            countries_of_expertise=frozenset(rng.sample(["GT", "HN"], rng.randint(0, 1))),
            wants_mentor=rng.random() < 0.5,
            registered_by=rng.choice([None, "a", "b"]),
        )
        for _ in range(3 * n)
    ]
    return cases, volunteers


def _context(rng: random.Random, volunteers: list[VolunteerView]) -> Context:
    return Context(
        today=TODAY,
        declined=frozenset(v.id for v in rng.sample(volunteers, 3)),
        interpreter_available=rng.random() < 0.3,
        mentor_available=rng.random() < 0.7,
        facility_paused=rng.random() < 0.03,
    )


@pytest.mark.parametrize(
    "role", [ATTORNEY, VolunteerRole.INTERPRETER, VolunteerRole.COUNTRY_CONDITIONS_EXPERT]
)
def test_rank_and_the_pool_agree_with_check_and_score(role: VolunteerRole) -> None:
    rng = random.Random(11)
    cases, volunteers = _random_network(rng, 150)
    weights = Weights(partner_affinity=0.7, mentoring=0.3)
    pool = VolunteerPool(volunteers, role, weights)
    eligible_pairs = 0
    for case in cases:
        context = _context(rng, volunteers)
        expected = {
            v.id: score(case, v, role, context, weights)
            for v in volunteers
            if isinstance(check(case, v, role, context), Eligible)
        }
        eligible_pairs += len(expected)
        ranked = rank(case, volunteers, role, context, weights=weights)
        assert {r.volunteer.id for r in ranked} == set(expected)
        for r in ranked:
            assert r.score == pytest.approx(expected[r.volunteer.id].score, abs=1e-12)
            assert r.values == pytest.approx(expected[r.volunteer.id].values, abs=1e-12)
        assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)
        candidates = pool.evaluate(case, context)
        assert {pool.ids[i] for i in candidates.indices} == set(expected)
        pool_scores = pool.scores(candidates)
        for i, value in zip(candidates.indices, pool_scores, strict=True):
            assert value == pytest.approx(expected[pool.ids[i]].score, abs=1e-12)
        if ranked:
            best = pool.best(case, context)
            assert best is not None
            assert best[1] == pytest.approx(ranked[0].score, abs=1e-12)  # ties may differ in the last bit
    assert eligible_pairs > 300


def test_the_pool_takes_places_and_forks() -> None:
    volunteers = [_volunteer(1, active_load=3), _volunteer(2, active_load=0, max_active_cases=1)]
    pool = VolunteerPool(volunteers, ATTORNEY)
    assert list(pool.remaining) == [1, 1]
    twin = pool.fork()
    twin.take(0)
    assert list(twin.remaining) == [0, 1]
    assert list(pool.remaining) == [1, 1]
    assert list(twin.evaluate(_case(), CONTEXT).indices) == [1]
    assert np.array_equal(pool.evaluate(_case(), CONTEXT).indices, [0, 1])
    assert len(VolunteerPool([], ATTORNEY).evaluate(_case(), CONTEXT).indices) == 0
