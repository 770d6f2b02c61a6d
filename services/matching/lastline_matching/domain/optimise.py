"""The global pass: place as many open cases as possible, then with the highest total score.

- :class:`VolunteerPool` holds one role's volunteers as numpy columns and applies the same rules as
  :func:`~lastline_matching.domain.eligibility.check` and :func:`~lastline_matching.domain.scoring.score`
  to a case against the whole pool at once (tests hold the two equal). It serves fast online decisions
  over an in-memory pool and builds the global pass's candidate graph.
- :func:`solve` computes the optimum over a :class:`CandidateGraph` as a min-cost flow (OR-tools'
  ``SimpleMinCostFlow``, max flow at min cost: the number of matches first, then the score): source ->
  case (capacity 1) -> volunteer (cost -score) -> sink (capacity: the volunteer's remaining places).
- :func:`optimise` evaluates every case once (:class:`EligiblePairs`, 12 bytes a pair), solves on a
  sparse graph (each case's best, each volunteer's best per place left), then proves the result
  optimal over *all* eligible pairs by LP duality (:func:`duals`): a pair left out could only improve
  the assignment if its weight exceeded its endpoints' dual prices. Such pairs are added and the graph
  solved again, until none is left (or a round or time budget runs out, which it reports).
- :func:`online_greedy` is the baseline: cases in arrival order, each takes its best candidate with
  room at that moment, as the online path decides.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import numpy as np
from numpy.typing import NDArray
from ortools.graph.python import min_cost_flow  # type: ignore[import-untyped]  # stubs, no py.typed

from lastline_matching.domain.eligibility import (
    CLIENT_FACING,
    COUNSEL,
    Context,
    hearing_too_soon,
    needs_shared_language,
)
from lastline_matching.domain.model import CaseView, VolunteerView
from lastline_matching.domain.scoring import (
    DEFAULT_WEIGHTS,
    Weights,
    difficulty,
    facility_proximity,
    urgency,
)
from lastline_shared.contracts.enums import ExperienceLevel, VolunteerRole

SCALE = 1_000_000
"""Scores enter the solver as integers: resolution 1e-6."""

MIN_WEIGHT = -0.999
"""The least a pair weighs with prices subtracted."""

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
ContextOf = Callable[[CaseView], Context]


@dataclass(frozen=True, slots=True)
class Candidates:
    """One case's eligible volunteers (pool indices, ascending) and the part of their scores that does
    not depend on load; :meth:`VolunteerPool.scores` adds the load component."""

    indices: Ints
    fixed: Floats


class VolunteerPool:
    """The volunteers of one role, as columns, sorted by id (ties in score go to the smaller id, as in
    ``rank``). ``load`` is the only mutable column: online decisions take places from it."""

    def __init__(
        self, volunteers: Iterable[VolunteerView], role: VolunteerRole, weights: Weights = DEFAULT_WEIGHTS
    ) -> None:
        self.role = role
        self.weights = weights
        self.volunteers = sorted((v for v in volunteers if role in v.roles), key=lambda v: v.id)
        vs = self.volunteers
        self.ids = [v.id for v in vs]
        self.index = {v.id: i for i, v in enumerate(vs)}
        n = len(vs)
        self.max_cases: Ints = np.fromiter((v.max_active_cases for v in vs), np.int64, n)
        self.base_load: Ints = np.fromiter((v.active_load for v in vs), np.int64, n)
        self.load: Ints = self.base_load.copy()
        self.level: Ints = np.fromiter((v.experience_level.rank for v in vs), np.int64, n)
        self.novice: Bools = self.level == ExperienceLevel.NOVICE.rank
        self.wants_mentor: Bools = np.fromiter((v.wants_mentor for v in vs), np.bool_, n)
        self.remote: Bools = np.fromiter((v.remote for v in vs), np.bool_, n)
        self._languages = _columns(vs, lambda v: v.languages, n)
        self._reach = _columns(vs, lambda v: v.facilities_reachable, n)
        self._areas = _columns(vs, lambda v: v.practice_areas, n)
        self._courts = _columns(vs, lambda v: v.federal_courts, n)
        self._countries = _columns(vs, lambda v: v.countries_of_expertise, n)
        self._partners = _columns(vs, lambda v: () if v.registered_by is None else (v.registered_by,), n)
        groups: dict[frozenset[str], int] = {}
        self._reach_group: Ints = np.fromiter(
            (groups.setdefault(v.facilities_reachable, len(groups)) for v in vs), np.int64, n
        )
        self._reach_sets = list(groups)
        self._cache: dict[Any, NDArray[Any]] = {}
        self._false: Bools = np.zeros(n, np.bool_)
        w = weights
        self._total = sum(w.vector())
        self._w_load = w.load / self._total

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def remaining(self) -> Ints:
        remaining: Ints = np.maximum(self.max_cases - self.load, 0)
        return remaining

    def fork(self) -> VolunteerPool:
        """A pool sharing these columns with its own copy of the load (for a simulation)."""
        twin = copy.copy(self)
        twin.load = self.load.copy()
        return twin

    def take(self, index: int) -> None:
        """One more case (or proposal) for the volunteer at ``index``."""
        self.load[index] += 1

    # -- the rules, vectorised -------------------------------------------------------------------

    def eligible(self, case: CaseView, context: Context) -> Bools:
        """Who passes :func:`check` for this case, given the current load."""
        role = self.role
        if context.facility_paused or hearing_too_soon(case, context) or not len(self):
            return self._false
        mask = self.load < self.max_cases
        if role in CLIENT_FACING:
            if needs_shared_language(role, context):
                mask &= self._any(self._languages, case.languages)
            mask &= self.remote | self._column(self._reach, case.facility_code)
        if role in COUNSEL:
            in_area = self._column(self._areas, case.case_type.practice_area)
            novice_ok = (in_area | (not case.complex)) if context.mentor_available else self._false
            mask &= np.where(self.novice, novice_ok, in_area)
            if case.needs_federal_admission:
                district = case.federal_district
                mask &= self._column(self._courts, district) if district is not None else self._false
        elif role is VolunteerRole.COUNTRY_CONDITIONS_EXPERT and case.country_conditions:
            mask &= self._any(self._countries, tuple(sorted(case.country_conditions)))
        declined = [self.index[v] for v in context.declined if v in self.index]
        if declined:
            mask[declined] = False
        return mask

    def evaluate(self, case: CaseView, context: Context) -> Candidates:
        """The eligible volunteers and their scores but for load, as :func:`score` computes them."""
        indices = np.flatnonzero(self.eligible(case, context))
        w = self.weights
        counsel = self.role in COUNSEL
        fixed = self._fluency(case.languages)[indices] * w.language
        fixed += self._near_column(case.facility_code)[indices] * w.proximity
        if counsel:
            fixed += self._column(self._areas, case.case_type.practice_area)[indices] * w.practice_area
            fixed += self._experience(difficulty(case))[indices] * w.experience
            if context.mentor_available:
                fixed += (self.novice & self.wants_mentor)[indices] * w.mentoring
        else:
            fixed += w.practice_area + (0.5 + self.level[indices] / 6) * w.experience
        fixed += (
            self._any(self._partners, tuple(sorted(case.referring_partners)))[indices] * w.partner_affinity
        )
        fixed += urgency(case, context.today) * w.urgency
        fixed /= self._total
        return Candidates(indices, fixed)

    def scores(self, candidates: Candidates, load: Ints | None = None) -> Floats:
        """The candidates' scores with the load component, from ``load`` (default: the current one)."""
        i = candidates.indices
        current = self.load if load is None else load
        return candidates.fixed + self._w_load * np.clip(1 - current[i] / self.max_cases[i], 0.0, 1.0)

    def load_score(self, index: int) -> float:
        """The load component's (weighted) share of the score of the volunteer at ``index`` now."""
        free = 1 - self.load[index] / self.max_cases[index] if self.max_cases[index] > 0 else 0.0
        return float(self._w_load * min(1.0, max(0.0, free)))

    def top(self, case: CaseView, context: Context, limit: int, prices: Floats | None = None) -> Ints:
        """The online decision's shortlist: the indices of the ``limit`` eligible volunteers with the
        highest score minus price (``prices`` per pool index, as :meth:`Duals.prices`), ties to the
        smaller id as ``rank`` breaks them; in no particular order (``rank`` orders the few)."""
        candidates = self.evaluate(case, context)
        if not len(candidates.indices) or limit <= 0:
            return candidates.indices[:0]
        value = self.scores(candidates)
        if prices is not None:
            value = value - prices[candidates.indices]
        if len(value) <= limit:
            return candidates.indices
        kth = np.partition(value, len(value) - limit)[len(value) - limit]
        above = np.flatnonzero(value > kth)
        tied = np.flatnonzero(value == kth)[: limit - len(above)]  # indices ascend with the id
        picked: Ints = candidates.indices[np.concatenate([above, tied])]
        return picked

    def best(self, case: CaseView, context: Context) -> tuple[int, float] | None:
        """The online decision: the eligible volunteer with the highest score now, and the score."""
        candidates = self.evaluate(case, context)
        if not len(candidates.indices):
            return None
        scores = self.scores(candidates)
        k = int(np.argmax(scores))  # the first maximum: the smallest id among equals
        return int(candidates.indices[k]), float(scores[k])

    # -- cached columns --------------------------------------------------------------------------

    def _column(self, columns: dict[str, Bools], key: str) -> Bools:
        return columns.get(key, self._false)

    def _any(self, columns: dict[str, Bools], keys: tuple[str, ...]) -> Bools:
        cache_key = (id(columns), keys)
        hit = self._cache.get(cache_key)
        if hit is None:
            hit = self._false.copy()
            for key in keys:
                hit |= self._column(columns, key)
            self._cache[cache_key] = hit
        return hit

    def _fluency(self, languages: tuple[str, ...]) -> Floats:
        hit = self._cache.get(("fluency", languages))
        if hit is None:
            hit = np.zeros(len(self))
            for position in range(len(languages) - 1, 0, -1):
                value = max(0.4, 0.8 - 0.2 * (position - 1))
                hit = np.where(self._column(self._languages, languages[position]), value, hit)
            hit = np.where(self._column(self._languages, languages[0]), 1.0, hit)
            self._cache[("fluency", languages)] = hit
        return hit

    def _near_column(self, facility: str) -> Floats:
        hit = self._cache.get(("near", facility))
        if hit is None:
            per_group = np.array([facility_proximity(facility, s) for s in self._reach_sets] or [0.0])
            hit = per_group[self._reach_group] if len(self) else np.zeros(0)
            self._cache[("near", facility)] = hit
        return hit

    def _experience(self, needed: int) -> Floats:
        hit = self._cache.get(("experience", needed))
        if hit is None:
            level = self.level
            hit = np.clip(1 - 0.3 * np.maximum(0, needed - level) - 0.1 * np.maximum(0, level - needed), 0, 1)
            self._cache[("experience", needed)] = hit
        return hit


def _columns(
    vs: Sequence[VolunteerView], values: Callable[[VolunteerView], Iterable[str]], n: int
) -> dict[str, Bools]:
    """For each value (a language, a facility, ...), which volunteers have it."""
    columns: dict[str, Bools] = {}
    for i, v in enumerate(vs):
        for value in values(v):
            column = columns.get(value)
            if column is None:
                column = columns[value] = np.zeros(n, np.bool_)
            column[i] = True
    return columns


# -- the candidate graph and its optimum -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandidateGraph:
    """Eligible (case, volunteer) pairs with their scores, by index into ``case_ids`` and the pool."""

    case_ids: tuple[UUID, ...]
    volunteer_ids: tuple[UUID, ...]
    capacity: Ints
    """Places each volunteer has left."""
    case: Ints
    volunteer: Ints
    score: Floats

    @property
    def edges(self) -> int:
        return len(self.case)

    def with_edges(
        self, case: Ints, volunteer: Ints, score: Floats, *, replace: bool = False
    ) -> CandidateGraph:
        """This graph plus the given pairs (pairs already in it are kept once: with their score in the
        graph, or with the given one if ``replace``)."""
        first_c, then_c = (case, self.case) if replace else (self.case, case)
        first_v, then_v = (volunteer, self.volunteer) if replace else (self.volunteer, volunteer)
        first_s, then_s = (score, self.score) if replace else (self.score, score)
        c = np.concatenate([first_c, then_c])
        v = np.concatenate([first_v, then_v])
        s = np.concatenate([first_s, then_s])
        _, first = np.unique(c * len(self.volunteer_ids) + v, return_index=True)
        return CandidateGraph(self.case_ids, self.volunteer_ids, self.capacity, c[first], v[first], s[first])


@dataclass(frozen=True, slots=True)
class Assignment:
    """A volunteer (index) per case, or -1, and the pair's score (0 when unplaced)."""

    volunteer_of: Ints
    score_of: Floats

    @property
    def matched(self) -> int:
        return int((self.volunteer_of >= 0).sum())

    @property
    def total_score(self) -> float:
        return float(self.score_of.sum())

    def pairs(self, graph: CandidateGraph) -> dict[UUID, UUID]:
        """Case id -> volunteer id for the placed cases."""
        return {graph.case_ids[c]: graph.volunteer_ids[v] for c, v in enumerate(self.volunteer_of) if v >= 0}


@dataclass(frozen=True, slots=True)
class EligiblePairs:
    """Every eligible (case, volunteer) pair of a pass, grouped by case, with its score in the solver's
    integer units: the whole problem, kept compact (12 bytes a pair) so that checking a solution
    against all of it is a few numpy passes rather than re-evaluating every case."""

    case: NDArray[np.int32]
    volunteer: NDArray[np.int32]
    weight: NDArray[np.int32]
    """``round(score * SCALE)``."""
    starts: Ints
    """Case ``c``'s pairs are ``[starts[c], starts[c + 1])``."""

    def __len__(self) -> int:
        return len(self.case)


def eligible_pairs(
    cases: Sequence[CaseView], pool: VolunteerPool, context_of: ContextOf, prices: Floats | None = None
) -> EligiblePairs:
    """Evaluate every case against the pool (its current load) once; with ``prices`` (per pool index),
    each pair weighs its score minus the volunteer's price (kept above -1: the solver's keys assume
    weights within one ``SCALE`` of 0; a match still counts first)."""
    heads: list[NDArray[np.int32]] = []
    weights: list[NDArray[np.int32]] = []
    for case in cases:
        candidates = pool.evaluate(case, context_of(case))
        heads.append(candidates.indices.astype(np.int32))
        scores = pool.scores(candidates)
        if prices is not None:
            scores = np.maximum(scores - prices[candidates.indices], MIN_WEIGHT)
        weights.append(_integer(scores).astype(np.int32))
    sizes = np.fromiter((len(h) for h in heads), np.int64, len(heads))
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    tails = np.repeat(np.arange(len(cases), dtype=np.int32), sizes)
    volunteer = np.concatenate(heads) if heads else np.zeros(0, np.int32)
    weight = np.concatenate(weights) if weights else np.zeros(0, np.int32)
    return EligiblePairs(tails, volunteer, weight, starts)


def candidate_graph(
    cases: Sequence[CaseView],
    pool: VolunteerPool,
    pairs: EligiblePairs,
    *,
    top_k: int = 24,
    per_place: int = 4,
    spare: Bools | None = None,
    top_spare: int = 8,
) -> CandidateGraph:
    """The pairs likely to matter: each case's ``top_k`` best; each volunteer's best ``per_place`` per
    place left plus 4 (so that volunteers few cases prefer still get enough cases to fill up, and an
    optimum can move cases to them to free others' places); and each case's ``top_spare`` best with
    ``spare`` volunteers (such as those the greedy baseline left with room)."""
    keep: list[Ints] = []
    for c in range(len(cases)):
        lo, hi = int(pairs.starts[c]), int(pairs.starts[c + 1])
        w = pairs.weight[lo:hi]
        chosen = _top(w, top_k)
        if spare is not None and hi - lo > top_k:
            others = np.flatnonzero(spare[pairs.volunteer[lo:hi]])
            chosen = np.union1d(chosen, others[_top(w[others], top_spare)])
        keep.append(lo + chosen)
    if per_place > 0 and len(pairs):
        # Sort pairs by volunteer, best first, with one int64 key: volunteer, then SCALE - weight.
        order = np.argsort(
            pairs.volunteer.astype(np.int64) * (2 * SCALE) + (SCALE - pairs.weight), kind="stable"
        )
        by_volunteer = pairs.volunteer[order]
        starts = np.searchsorted(by_volunteer, np.arange(len(pool)))
        counts = np.diff(np.r_[starts, len(order)])
        wanted = np.minimum(counts, per_place * pool.remaining + 4)
        rank = np.arange(len(order)) - np.repeat(starts, counts)
        keep.append(order[rank < np.repeat(wanted, counts)])
    kept = np.unique(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return CandidateGraph(
        tuple(case.id for case in cases),
        tuple(pool.ids),
        pool.remaining,
        pairs.case[kept].astype(np.int64),
        pairs.volunteer[kept].astype(np.int64),
        pairs.weight[kept] / SCALE,
    )


def _top(scores: NDArray[Any], k: int) -> Ints:
    """Positions of the ``k`` largest scores (all of them if fewer)."""
    if len(scores) <= k:
        return np.arange(len(scores))
    return np.argpartition(-scores, k)[:k]


def solve(graph: CandidateGraph) -> Assignment:
    """The most matches, then the highest total score: max flow at min cost (OR-tools)."""
    n, m, e = len(graph.case_ids), len(graph.volunteer_ids), graph.edges
    source, sink = n + m, n + m + 1
    flow = min_cost_flow.SimpleMinCostFlow()
    tails = np.concatenate([np.full(n, source), graph.case, n + np.arange(m)]).astype(np.int32)
    heads = np.concatenate([np.arange(n), n + graph.volunteer, np.full(m, sink)]).astype(np.int32)
    capacities = np.concatenate([np.ones(n + e, np.int64), graph.capacity.astype(np.int64)])
    costs = np.concatenate([np.zeros(n, np.int64), -_integer(graph.score), np.zeros(m, np.int64)])
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
    flow.set_nodes_supplies(np.array([source, sink], np.int32), np.array([n, -n], np.int64))
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed: {status}")
    used = np.asarray(flow.flows(np.arange(n, n + e, dtype=np.int32))) > 0
    volunteer_of = np.full(n, -1, np.int64)
    volunteer_of[graph.case[used]] = graph.volunteer[used]
    score_of = np.zeros(n)
    score_of[graph.case[used]] = graph.score[used]
    return Assignment(volunteer_of, score_of)


def greedy(graph: CandidateGraph, order: Sequence[int] | None = None) -> Assignment:
    """Cases in ``order`` (default: as listed), each takes its best candidate in the graph with room."""
    by_case = np.lexsort((graph.volunteer, -graph.score, graph.case))
    starts = np.searchsorted(graph.case[by_case], np.arange(len(graph.case_ids) + 1))
    room = graph.capacity.copy()
    volunteer_of = np.full(len(graph.case_ids), -1, np.int64)
    score_of = np.zeros(len(graph.case_ids))
    for c in range(len(graph.case_ids)) if order is None else order:
        for e in by_case[starts[c] : starts[c + 1]]:
            v = graph.volunteer[e]
            if room[v] > 0:
                room[v] -= 1
                volunteer_of[c], score_of[c] = v, graph.score[e]
                break
    return Assignment(volunteer_of, score_of)


def online_greedy(
    cases: Sequence[CaseView], pool: VolunteerPool, context_of: ContextOf, prices: Floats | None = None
) -> tuple[Assignment, Floats]:
    """The online baseline: cases in arrival order, each placed with its best candidate given the load
    at that moment (on a fork: ``pool`` is unchanged); with ``prices`` (per pool index, in score units,
    such as an earlier pass's :meth:`Duals.prices`), the best by score minus price, as the service
    decides. Scores are counted as at the start, the global pass's objective. Also returns each
    decision's duration in seconds."""
    live = pool.fork()
    volunteer_of = np.full(len(cases), -1, np.int64)
    score_of = np.zeros(len(cases))
    durations = np.zeros(len(cases))
    for c, case in enumerate(cases):
        started = time.perf_counter()
        candidates = live.evaluate(case, context_of(case))
        if len(candidates.indices):
            scores = live.scores(candidates)
            k = int(np.argmax(scores if prices is None else scores - prices[candidates.indices]))
            v = int(candidates.indices[k])
            live.take(v)
            volunteer_of[c] = v
            score_of[c] = candidates.fixed[k] + pool.load_score(v)
        durations[c] = time.perf_counter() - started
    return Assignment(volunteer_of, score_of), durations


# -- proof of optimality over every eligible pair --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Duals:
    """Optimal LP dual prices of cases and volunteers (integers, in the solver's units)."""

    case: Ints
    volunteer: Ints
    big: int
    """The weight of a match itself: larger than any total score, so matches count first."""

    def prices(self) -> Floats:
        """The volunteers' prices in score units (a match itself is worth ``big / SCALE``, about the
        number of cases): the value one more place of each volunteer would add to the optimum. Online
        decisions subtract them from scores, so a volunteer whom harder cases need is taken last."""
        prices: Floats = self.volunteer / SCALE
        return prices


def duals(graph: CandidateGraph, assignment: Assignment) -> Duals | None:
    """Prices proving ``assignment`` optimal on ``graph`` (None if it is not, or no proof is found).

    The problem is max ``sum (big + score) x`` with each case at most once and each volunteer at most
    its capacity; its dual gives each case a price ``u >= 0`` and each volunteer ``p >= 0`` with
    ``u_c + p_v >= big + score`` on every edge, and by complementary slackness the assignment is
    optimal iff such prices exist with equality on used edges, ``u = 0`` for unplaced cases and
    ``p = 0`` for volunteers with room. Taking ``u_c = w(c, m(c)) - p_m`` for a placed case, the
    volunteer prices are the least solution of difference constraints (a longest-path problem), found
    by Bellman-Ford relaxation, vectorised over edges."""
    big = len(graph.case_ids) * SCALE + 1
    weight = big + _integer(graph.score)
    match = assignment.volunteer_of
    m = len(graph.volunteer_ids)
    price = np.zeros(m, np.int64)
    placed = match[graph.case] >= 0
    loose = ~placed  # edges of unplaced cases: p_v >= w
    np.maximum.at(price, graph.volunteer[loose], weight[loose])
    # Edges of placed cases to other volunteers: p_v >= p_m + w(c, v) - w(c, m).
    own_weight = np.zeros(len(graph.case_ids), np.int64)
    used = placed & (match[graph.case] == graph.volunteer)
    own_weight[graph.case[used]] = weight[used]
    other = placed & ~used
    v_to = graph.volunteer[other]
    order = np.argsort(v_to, kind="stable")
    v_to = v_to[order]
    m_from = match[graph.case[other]][order]
    delta = (weight[other] - own_weight[graph.case[other]])[order]
    targets, starts = np.unique(v_to, return_index=True)
    for _ in range(m + 1):  # a longest path visits each volunteer once; more rounds mean a cycle
        if not len(targets):
            break
        reach = np.maximum.reduceat(price[m_from] + delta, starts)
        better = reach > price[targets]
        if not better.any():
            break
        price[targets[better]] = reach[better]
    else:
        return None
    load = np.bincount(match[match >= 0], minlength=m)
    placed_cases = np.flatnonzero(match >= 0)
    case_price = np.zeros(len(graph.case_ids), np.int64)
    case_price[placed_cases] = own_weight[placed_cases] - price[match[placed_cases]]
    if (price[load < graph.capacity] != 0).any() or (case_price < 0).any():
        return None
    return Duals(case_price, price, big)


@dataclass(frozen=True, slots=True)
class GlobalPass:
    """The global pass's result and how it was reached."""

    graph: CandidateGraph
    assignment: Assignment
    proven_optimal: bool
    """No eligible pair outside the graph could improve the assignment (checked against every pair)."""
    rounds: int
    eligible_pairs: int
    """Every eligible (case, volunteer) pair, of which the graph holds ``graph.edges``."""
    added: list[int] = field(default_factory=list)
    """Pairs added to the graph in each round after the first."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent building the graph, solving, pricing and checking every pair."""
    cases_open: int = 0
    """Cases that still had a pair that could improve the assignment when the pass stopped (0 when
    proven optimal)."""
    duals: Duals | None = None
    """The prices of the last round's solution (None when no proof was found)."""


def optimise(
    cases: Sequence[CaseView],
    pool: VolunteerPool,
    context_of: ContextOf,
    *,
    top_k: int = 24,
    per_place: int = 4,
    top_spare: int = 8,
    add_per_case: int = 16,
    max_rounds: int = 30,
    budget_s: float | None = None,
    include: Assignment | None = None,
    keep: Assignment | None = None,
    keep_bonus: float = 0.0,
    prices: Floats | None = None,
) -> GlobalPass:
    """Solve over each case's ``top_k`` candidates (and, given ``include`` such as the greedy
    baseline's assignment, its pairs, so the optimum is never worse, and each case's ``top_spare`` best
    among the volunteers it left with room), then check every eligible pair against the duals; add
    each case's ``add_per_case`` pairs that could improve the assignment most, and solve again, until
    none is left (proven optimal), or after ``max_rounds`` or the round that passes ``budget_s``.

    ``keep`` (such as the open proposals) is the current assignment: its pairs are in the graph with
    ``keep_bonus`` added to their scores, so the optimum moves a case only for a gain larger than that
    (no churn between solutions of equal worth).

    ``prices`` (per pool index, such as :meth:`Duals.prices` of a pass over the expected demand) make
    the objective score minus price, as online decisions rank: without them a pass over the cases open
    now hands them the volunteers later cases will need, undoing what the prices steered online.
    ``include`` and ``keep`` scores are then expected net of the same prices."""
    started = time.perf_counter()
    seconds = dict.fromkeys(("pairs", "graph", "solve", "duals", "check"), 0.0)
    clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[phase] += now - clock
        clock = now

    pairs = eligible_pairs(cases, pool, context_of, prices)
    lap("pairs")
    spare = None
    if include is not None:  # volunteers the baseline left with room are likely to keep some
        load = np.bincount(include.volunteer_of[include.volunteer_of >= 0], minlength=len(pool))
        spare = load < pool.remaining
    graph = candidate_graph(
        cases, pool, pairs, top_k=top_k, per_place=per_place, spare=spare, top_spare=top_spare
    )
    if include is not None:
        placed = np.flatnonzero(include.volunteer_of >= 0)
        graph = graph.with_edges(placed, include.volunteer_of[placed], include.score_of[placed])
    if keep is not None:
        placed = np.flatnonzero(keep.volunteer_of >= 0)
        kept_score = keep.score_of[placed] + keep_bonus
        graph = graph.with_edges(placed, keep.volunteer_of[placed], kept_score, replace=True)
    lap("graph")
    added: list[int] = []
    for round_ in range(1, max_rounds + 1):
        assignment = solve(graph)
        lap("solve")
        proof = duals(graph, assignment)
        lap("duals")
        if proof is None:
            return GlobalPass(graph, assignment, False, round_, len(pairs), added, seconds)
        c, v, s = _violations(pairs, proof, add_per_case)
        lap("check")
        over = budget_s is not None and time.perf_counter() - started > budget_s
        if not len(c) or round_ == max_rounds or over:
            open_ = len(np.unique(c))
            return GlobalPass(graph, assignment, not len(c), round_, len(pairs), added, seconds, open_, proof)
        added.append(len(c))
        graph = graph.with_edges(c, v, s)
    raise AssertionError("unreachable")


def _violations(pairs: EligiblePairs, prices: Duals, per_case: int) -> tuple[Ints, Ints, Floats]:
    """Each case's ``per_case`` eligible pairs whose weight exceeds their prices the most: those that
    could improve the assignment (none: it is optimal over every pair)."""
    found: list[tuple[Ints, Ints, Ints]] = []
    chunk = 8_000_000
    for lo in range(0, len(pairs), chunk):
        c = pairs.case[lo : lo + chunk]
        v = pairs.volunteer[lo : lo + chunk]
        w = pairs.weight[lo : lo + chunk]
        excess = prices.big + w.astype(np.int64) - prices.case[c] - prices.volunteer[v]
        bad = np.flatnonzero(excess > 0)
        found.append((c[bad].astype(np.int64), v[bad].astype(np.int64), excess[bad]))
    case = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
    volunteer = np.concatenate([f[1] for f in found]) if found else np.zeros(0, np.int64)
    excess = np.concatenate([f[2] for f in found]) if found else np.zeros(0, np.int64)
    order = np.lexsort((-excess, case))
    case, volunteer = case[order], volunteer[order]
    first = np.flatnonzero(np.r_[True, case[1:] != case[:-1]]) if len(case) else np.zeros(0, np.int64)
    rank = np.arange(len(case)) - np.repeat(first, np.diff(np.r_[first, len(case)]))
    keep = rank < per_case
    case, volunteer = case[keep], volunteer[keep]
    # The pair's own weight back from its excess: w = excess + u_c + p_v - big.
    score = excess[order][keep] + prices.case[case] + prices.volunteer[volunteer] - prices.big
    return case, volunteer, score / SCALE


def _integer(scores: Floats) -> Ints:
    return np.rint(scores * SCALE).astype(np.int64)
