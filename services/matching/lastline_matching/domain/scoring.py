"""Preferences among eligible volunteers: a score in [0, 1] made of named components.

``score = sum(weight * value) / sum(weight)`` over the components of the contract's
``ScoreComponentName`` (each value in [0, 1]), so staff and volunteers see why someone was chosen.
Urgency depends on the case alone: it does not reorder one case's candidates, but it lets the global
pass prefer the cases whose hearings are closest when volunteers are scarce.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from datetime import date
from functools import cache, lru_cache
from uuid import UUID

from lastline_matching.domain.eligibility import COUNSEL, Context, Eligible, check, screen
from lastline_matching.domain.model import CaseView, VolunteerView
from lastline_shared.contracts.enums import (
    CaseType,
    ExperienceLevel,
    MatchConstraint,
    ScoreComponentName,
    VolunteerRole,
)
from lastline_shared.contracts.matches import ScoreComponent
from lastline_shared.reference import default_catalog, distance_km

URGENT_DAYS = 3
"""A hearing this close (or closer) is as urgent as it gets."""
HORIZON_DAYS = 60
"""A hearing this far away (or further, or unknown) adds no urgency."""
LONG_DETENTION_DAYS = 180
"""Detention this long (or longer) is as urgent as it gets."""
NEAR_KM = 800
"""A remote volunteer who visits another facility this far from the case's knows nothing of its region."""

_DIFFICULTY = {
    CaseType.BOND: 1,
    CaseType.PAROLE: 1,
    CaseType.CREDIBLE_FEAR: 1,
    CaseType.REASONABLE_FEAR: 1,
    CaseType.TPS: 1,
    CaseType.MOTION_TO_REOPEN: 3,
    CaseType.BIA_APPEAL: 3,
    CaseType.FEDERAL_HABEAS: 3,
    CaseType.PETITION_FOR_REVIEW: 3,
}
"""The experience rank (0 novice .. 3 expert) a case type calls for; 2 when not listed."""
_RANK = {level: level.rank for level in ExperienceLevel}


@dataclass(frozen=True, slots=True)
class Weights:
    """Each component's weight (>= 0, not all 0); fields are named after ``ScoreComponentName``."""

    language: float = 2.0
    practice_area: float = 1.0
    experience: float = 1.5
    proximity: float = 1.0
    load: float = 1.0
    urgency: float = 1.0
    partner_affinity: float = 0.5
    mentoring: float = 0.5

    def __post_init__(self) -> None:
        if any(w < 0 for w in astuple(self)) or not any(astuple(self)):
            raise ValueError("weights must be >= 0 and not all 0")

    def vector(self) -> tuple[float, ...]:
        """The weights in ``COMPONENTS`` order."""
        return astuple(self)


COMPONENTS = tuple(ScoreComponentName(f.name) for f in fields(Weights))
"""The components, in the order of :meth:`Weights.vector` and of every ``values`` tuple."""
DEFAULT_WEIGHTS = Weights()


@dataclass(frozen=True, slots=True)
class Scored:
    """One volunteer's score for one case and role."""

    score: float
    values: tuple[float, ...]
    """Component values in ``COMPONENTS`` order."""
    weights: Weights

    @property
    def components(self) -> tuple[ScoreComponent, ...]:
        """The contract's components (values rounded to 4 places), as published with a proposal."""
        return _components(self.values, self.weights)


@dataclass(frozen=True, slots=True)
class Ranked:
    """An eligible candidate with the reasons it may take the case and its score."""

    volunteer: VolunteerView
    score: float
    values: tuple[float, ...]
    weights: Weights
    reasons: tuple[MatchConstraint, ...]
    mentor_needed: bool

    @property
    def components(self) -> tuple[ScoreComponent, ...]:
        return _components(self.values, self.weights)


# -- the components ---------------------------------------------------------------------------------


def urgency(case: CaseView, today: date) -> float:
    """Mostly how close the hearing is (linear from ``HORIZON_DAYS`` to ``URGENT_DAYS``), partly how
    long the client has been detained."""
    days = case.days_to_hearing(today)
    hearing = 0.0 if days is None else _clamp((HORIZON_DAYS - days) / (HORIZON_DAYS - URGENT_DAYS))
    detained = case.days_detained(today)
    detention = 0.0 if detained is None else _clamp(detained / LONG_DETENTION_DAYS)
    return 0.75 * hearing + 0.25 * detention


def difficulty(case: CaseView) -> int:
    """The experience rank the case calls for: by type, one more with any complexity flag (max 3)."""
    return min(3, _DIFFICULTY.get(case.case_type, 2) + (1 if case.complexity_flags else 0))


def experience_fit(case: CaseView, volunteer: VolunteerView, role: VolunteerRole) -> float:
    """Counsel: experience as the case needs it; less costs a lot, more a little (experts are scarce and
    better kept for hard cases). Other roles: more experience is better."""
    rank = _RANK[volunteer.experience_level]
    if role not in COUNSEL:
        return 0.5 + rank / 6
    needed = difficulty(case)
    return _clamp(1 - 0.3 * max(0, needed - rank) - 0.1 * max(0, rank - needed))


def language_fluency(case: CaseView, volunteer: VolunteerView) -> float:
    """1 in the client's preferred language, less for each later one, 0 with none (an interpreter)."""
    for position, language in enumerate(case.languages):
        if language in volunteer.languages:
            return 1.0 if position == 0 else max(0.4, 0.8 - 0.2 * (position - 1))
    return 0.0


def practice_fit(case: CaseView, volunteer: VolunteerView, role: VolunteerRole) -> float:
    """Counsel who practise the case's type (1) rather than learn it under a mentor (0)."""
    return 1.0 if role not in COUNSEL or case.case_type.practice_area in volunteer.practice_areas else 0.0


def load_balance(volunteer: VolunteerView) -> float:
    """The share of the volunteer's capacity still free: spreads cases across the network."""
    if volunteer.max_active_cases <= 0:
        return 0.0
    return _clamp(1 - volunteer.active_load / volunteer.max_active_cases)


def proximity(case: CaseView, volunteer: VolunteerView) -> float:
    """1 for a facility the volunteer visits; for a remote volunteer, up to 0.5 by how near the closest
    facility they visit is to the case's (they know the region, the court, the officers); else 0."""
    return facility_proximity(case.facility_code, volunteer.facilities_reachable)


@lru_cache(maxsize=65_536)
def facility_proximity(facility: str, reachable: frozenset[str]) -> float:
    """:func:`proximity` by facility codes (cached: volunteers share few distinct sets of facilities,
    and a frozenset keeps its hash)."""
    if facility in reachable:
        return 1.0
    best = min((facility_distance_km(f, facility) for f in reachable), default=None)
    return 0.0 if best is None else 0.5 * _clamp(1 - best / NEAR_KM)


def partner_affinity(case: CaseView, volunteer: VolunteerView) -> float:
    """1 when a partner that referred the case registered the volunteer: they already work together."""
    return (
        1.0
        if volunteer.registered_by is not None and volunteer.registered_by in case.referring_partners
        else 0.0
    )


def mentoring(volunteer: VolunteerView, role: VolunteerRole, context: Context) -> float:
    """1 for a novice who asked for a mentor and can have one: placements that grow the network."""
    wants = role in COUNSEL and volunteer.novice and volunteer.wants_mentor
    return 1.0 if wants and context.mentor_available else 0.0


@cache
def facility_distance_km(a: str, b: str) -> float:
    """Great-circle distance between two facilities of the reference data (infinite if unknown)."""
    catalog = default_catalog()
    fa, fb = catalog.facility(a), catalog.facility(b)
    return float("inf") if fa is None or fb is None else distance_km(fa, fb)


# -- scores and ranking -----------------------------------------------------------------------------


def component_values(
    case: CaseView, volunteer: VolunteerView, role: VolunteerRole, context: Context
) -> tuple[float, ...]:
    """Every component's value, in ``COMPONENTS`` order."""
    return (
        language_fluency(case, volunteer),
        practice_fit(case, volunteer, role),
        experience_fit(case, volunteer, role),
        proximity(case, volunteer),
        load_balance(volunteer),
        urgency(case, context.today),
        partner_affinity(case, volunteer),
        mentoring(volunteer, role, context),
    )


def score(
    case: CaseView,
    volunteer: VolunteerView,
    role: VolunteerRole,
    context: Context,
    weights: Weights = DEFAULT_WEIGHTS,
) -> Scored:
    """The weighted score of one (case, volunteer, role); eligibility is :func:`check`'s business."""
    values = component_values(case, volunteer, role, context)
    return Scored(_weighted(values, weights.vector()), values, weights)


def scorer(
    case: CaseView, role: VolunteerRole, context: Context, weights: Weights = DEFAULT_WEIGHTS
) -> Callable[[VolunteerView], tuple[float, tuple[float, ...]]]:
    """:func:`score` compiled for one case and role, the component functions inlined (for ranking
    hundreds of candidates): a function of the volunteer returning the score and the values."""
    w0, w1, w2, w3, w4, w5, w6, w7 = weights.vector()
    total = w0 + w1 + w2 + w3 + w4 + w5 + w6 + w7
    urgent = urgency(case, context.today)
    counsel = role in COUNSEL
    need = difficulty(case)
    area = case.case_type.practice_area
    first, later = case.languages[0], case.languages[1:]
    facility = case.facility_code
    partners = case.referring_partners
    mentor_ok = context.mentor_available

    def scored(v: VolunteerView) -> tuple[float, tuple[float, ...]]:
        level = _RANK[v.experience_level]
        if first in v.languages:
            lang = 1.0
        else:
            lang = next((max(0.4, 0.8 - 0.2 * i) for i, x in enumerate(later) if x in v.languages), 0.0)
        if counsel:
            practice = 1.0 if area in v.practice_areas else 0.0
            experience = _clamp(1 - 0.3 * max(0, need - level) - 0.1 * max(0, level - need))
            mentor = 1.0 if level == 0 and v.wants_mentor and mentor_ok else 0.0
        else:
            practice, experience, mentor = 1.0, 0.5 + level / 6, 0.0
        reachable = v.facilities_reachable
        near = 1.0 if facility in reachable else facility_proximity(facility, reachable) if reachable else 0.0
        load = _clamp(1 - v.active_load / v.max_active_cases) if v.max_active_cases > 0 else 0.0
        partner = 1.0 if v.registered_by in partners else 0.0
        s = w0 * lang + w1 * practice + w2 * experience + w3 * near + w4 * load + w5 * urgent
        s = (s + w6 * partner + w7 * mentor) / total
        return s, (lang, practice, experience, near, load, urgent, partner, mentor)

    return scored


def rank(
    case: CaseView,
    candidates: Iterable[VolunteerView],
    role: VolunteerRole,
    context: Context,
    *,
    weights: Weights = DEFAULT_WEIGHTS,
    limit: int | None = None,
    prices: Mapping[UUID, float] | None = None,
) -> list[Ranked]:
    """The eligible candidates, best first (ties by volunteer id), at most ``limit`` of them, each with
    the constraints that held (from :func:`check`) and its components. With ``prices`` (the last global
    pass's dual prices, in score units), best by score minus price: a volunteer that harder cases need
    comes after one nobody else needs (the score published stays the score)."""
    eligible = screen(case, role, context)
    if eligible is None:
        return []
    score_of = scorer(case, role, context, weights)
    price = (prices or {}).get
    scored: list[tuple[float, UUID, float, VolunteerView, tuple[float, ...]]] = []
    for v in candidates:
        if eligible(v):
            s, x = score_of(v)
            # Ascending: best first, ties to the smaller id.
            scored.append((price(v.id, 0.0) - s, v.id, s, v, x))
    best = heapq.nsmallest(limit, scored) if limit is not None else sorted(scored)
    ranked = []
    for _, _, s, v, x in best:
        verdict = check(case, v, role, context)
        assert isinstance(verdict, Eligible), "screen() and check() disagree"
        ranked.append(Ranked(v, s, x, weights, verdict.reasons, verdict.mentor_needed))
    return ranked


def _weighted(values: tuple[float, ...], weights: tuple[float, ...]) -> float:
    return sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights)


def _components(values: tuple[float, ...], weights: Weights) -> tuple[ScoreComponent, ...]:
    return tuple(
        ScoreComponent(factor=name, value=round(float(value), 4), weight=float(weight))
        for name, value, weight in zip(COMPONENTS, values, weights.vector(), strict=True)
    )


def _clamp(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x
