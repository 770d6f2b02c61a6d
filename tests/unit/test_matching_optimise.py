"""The global pass: the min-cost-flow optimum against brute force, the greedy baselines, and the
duality proof that lets the pass work on a small graph yet be optimal over every eligible pair."""

from __future__ import annotations

import dataclasses
import itertools
import random
import uuid
from collections import Counter
from datetime import date, timedelta

import numpy as np
import pytest

from lastline_matching.domain import (
    CandidateGraph,
    CaseView,
    Context,
    VolunteerPool,
    VolunteerView,
    greedy,
    online_greedy,
    optimise,
    solve,
)
from lastline_matching.domain.optimise import Assignment, duals
from lastline_matching.domain.scoring import rank
from lastline_shared.contracts.enums import CaseType, ExperienceLevel, PracticeArea, VolunteerRole

TODAY = date(2026, 3, 2)


def _graph(edges: dict[tuple[int, int], float], capacity: list[int], n_cases: int) -> CandidateGraph:
    pairs = sorted(edges)
    return CandidateGraph(
        tuple(uuid.UUID(int=c) for c in range(n_cases)),
        tuple(uuid.UUID(int=1000 + v) for v in range(len(capacity))),
        np.array(capacity, np.int64),
        np.array([c for c, _ in pairs], np.int64),
        np.array([v for _, v in pairs], np.int64),
        np.array([edges[p] for p in pairs]),
    )


def _brute_force(edges: dict[tuple[int, int], float], capacity: list[int], n_cases: int) -> tuple[int, float]:
    """The best (matched, total score) over every assignment: each case takes one neighbour or none."""
    options = [[None, *(v for (c2, v) in edges if c2 == c)] for c in range(n_cases)]
    best = (0, 0.0)
    for choice in itertools.product(*options):
        used = Counter(v for v in choice if v is not None)
        if any(used[v] > capacity[v] for v in used):
            continue
        placed = [(c, v) for c, v in enumerate(choice) if v is not None]
        value = (len(placed), round(sum(edges[p] for p in placed), 6))
        best = max(best, value)
    return best


def _random_instance(rng: random.Random) -> tuple[dict[tuple[int, int], float], list[int], int]:
    n_cases, n_volunteers = rng.randint(1, 6), rng.randint(1, 4)
    capacity = [rng.randint(0, 2) for _ in range(n_volunteers)]
    edges = {
        (c, v): round(rng.random(), 6)
        for c in range(n_cases)
        for v in range(n_volunteers)
        if rng.random() < 0.6
    }
    return edges, capacity, n_cases


def _check_feasible(assignment: Assignment, graph: CandidateGraph) -> None:
    pairs = set(zip(graph.case.tolist(), graph.volunteer.tolist(), strict=True))
    placed = [(c, int(v)) for c, v in enumerate(assignment.volunteer_of) if v >= 0]
    assert all(p in pairs for p in placed)
    load = Counter(v for _, v in placed)
    assert all(load[v] <= graph.capacity[v] for v in load)


def test_the_optimum_matches_brute_force() -> None:
    rng = random.Random(3)
    for _ in range(300):
        edges, capacity, n_cases = _random_instance(rng)
        graph = _graph(edges, capacity, n_cases)
        best = solve(graph)
        _check_feasible(best, graph)
        matched, total = _brute_force(edges, capacity, n_cases)
        assert best.matched == matched, (edges, capacity)
        assert best.total_score == pytest.approx(total, abs=1e-6), (edges, capacity)
        assert duals(graph, best) is not None  # the proof holds for an optimum
        baseline = greedy(graph)
        _check_feasible(baseline, graph)
        assert (baseline.matched, baseline.total_score) <= (best.matched, best.total_score + 1e-9)


def test_more_matches_come_before_a_higher_score() -> None:
    # One case alone on a high score, or two cases on lower ones: two placements win.
    graph = _graph({(0, 0): 1.0, (0, 1): 0.1, (1, 0): 0.1}, [1, 1], 2)
    best = solve(graph)
    assert best.matched == 2
    assert best.total_score == pytest.approx(0.2)
    assert best.pairs(graph) == {uuid.UUID(int=0): uuid.UUID(int=1001), uuid.UUID(int=1): uuid.UUID(int=1000)}


def test_a_greedy_early_choice_blocks_a_later_case_and_the_proof_says_so() -> None:
    graph = _graph({(0, 0): 0.9, (0, 1): 0.8, (1, 0): 0.7}, [1, 1], 2)
    early = greedy(graph)
    assert early.matched == 1
    assert duals(graph, early) is None  # not optimal: no prices can prove it
    assert greedy(graph, order=[1, 0]).matched == 2
    assert solve(graph).matched == 2


def test_an_empty_graph() -> None:
    graph = _graph({}, [1], 2)
    assert solve(graph).matched == 0
    assert greedy(graph).total_score == 0


def _network(
    rng: random.Random, n_cases: int, n_volunteers: int
) -> tuple[list[CaseView], list[VolunteerView]]:
    languages = ["spa", "mam", "fra", "por"]
    cases = [
        CaseView(
            id=uuid.UUID(int=rng.getrandbits(128)),
            facility_code=rng.choice(["STWRTGA", "KRO"]),
            court_code="LUM",
            case_type=rng.choice([CaseType.ASYLUM, CaseType.BOND]),
            languages=tuple(rng.sample(languages, rng.randint(1, 2))),
            next_hearing_date=TODAY + timedelta(days=rng.randint(2, 60)),
        )
        for _ in range(n_cases)
    ]
    volunteers = [
        VolunteerView(
            id=uuid.UUID(int=rng.getrandbits(128)),
            roles=frozenset({VolunteerRole.ATTORNEY}),
            languages=frozenset(rng.sample(languages, rng.randint(1, 2))),
            experience_level=rng.choice(list(ExperienceLevel)),
            practice_areas=frozenset({PracticeArea.ASYLUM, PracticeArea.BOND}),
            max_active_cases=rng.randint(1, 2),
            active_load=rng.randint(0, 1),
            facilities_reachable=frozenset(rng.sample(["STWRTGA", "KRO"], rng.randint(0, 1))),
            remote=rng.random() < 0.5,
        )
        for _ in range(n_volunteers)
    ]
    return cases, volunteers


def _context(case: CaseView) -> Context:
    return Context(today=TODAY, mentor_available=True)


def test_the_global_pass_on_a_small_graph_is_proven_optimal_over_every_eligible_pair() -> None:
    rng = random.Random(5)
    proofs_that_needed_more_pairs = 0
    for _ in range(40):
        cases, volunteers = _network(rng, 6, 4)
        pool = VolunteerPool(volunteers, VolunteerRole.ATTORNEY)
        full = {}
        for c, case in enumerate(cases):
            candidates = pool.evaluate(case, _context(case))
            for i, score in zip(candidates.indices, pool.scores(candidates), strict=True):
                full[(c, int(i))] = round(float(score), 6)
        result = optimise(cases, pool, _context, top_k=1, per_place=0)  # the proof must add pairs
        assert result.proven_optimal
        assert result.eligible_pairs == len(full)
        proofs_that_needed_more_pairs += bool(result.added)
        if result.added:  # stopped before the proof: said so, with the cases that could still improve
            early = optimise(cases, pool, _context, top_k=1, per_place=0, max_rounds=1)
            assert (early.proven_optimal, early.rounds) == (False, 1)
            assert early.cases_open > 0
        matched, total = _brute_force(full, [int(r) for r in pool.remaining], len(cases))
        assert result.assignment.matched == matched
        assert result.assignment.total_score == pytest.approx(total, abs=1e-5)
    assert proofs_that_needed_more_pairs > 5


def test_online_greedy_follows_the_load_and_leaves_the_pool_alone() -> None:
    rng = random.Random(8)
    cases, volunteers = _network(rng, 30, 10)
    pool = VolunteerPool(volunteers, VolunteerRole.ATTORNEY)
    before = pool.load.copy()
    result, durations = online_greedy(cases, pool, _context)
    assert np.array_equal(pool.load, before)
    assert len(durations) == len(cases)
    load = Counter(int(v) for v in result.volunteer_of if v >= 0)
    assert all(load[v] <= pool.remaining[v] for v in load)
    # Its pairs are eligible and it counts each with the score at the start of the pass.
    for c, v in enumerate(result.volunteer_of):
        if v >= 0:
            candidates = pool.evaluate(cases[c], _context(cases[c]))
            k = int(np.searchsorted(candidates.indices, v))
            assert candidates.indices[k] == v
            assert result.score_of[c] == pytest.approx(pool.scores(candidates)[k])
    best = optimise(cases, pool, _context, include=result)
    assert (best.assignment.matched, best.assignment.total_score) >= (
        result.matched,
        result.total_score - 1e-9,
    )


def test_the_pass_keeps_a_current_pair_unless_another_gains_more_than_the_bonus() -> None:
    case = CaseView(
        id=uuid.UUID(int=1),
        facility_code="STWRTGA",
        court_code="LUM",
        case_type=CaseType.ASYLUM,
        languages=("spa",),
        next_hearing_date=TODAY + timedelta(days=30),
    )

    def attorney(n: int, level: ExperienceLevel) -> VolunteerView:
        return VolunteerView(
            id=uuid.UUID(int=100 + n),
            roles=frozenset({VolunteerRole.ATTORNEY}),
            languages=frozenset({"spa"}),
            experience_level=level,
            practice_areas=frozenset({PracticeArea.ASYLUM}),
            max_active_cases=1,
            remote=True,
        )

    def placed(pool: VolunteerPool, keep_to: int) -> int:
        candidates = pool.evaluate(case, _context(case))
        kept = Assignment(np.array([keep_to]), np.array([pool.scores(candidates)[keep_to]]))
        result = optimise([case], pool, _context, keep=kept, keep_bonus=0.01)
        return int(result.assignment.volunteer_of[0])

    twins = VolunteerPool(
        [attorney(0, ExperienceLevel.EXPERIENCED), attorney(1, ExperienceLevel.EXPERIENCED)],
        VolunteerRole.ATTORNEY,
    )
    assert optimise([case], twins, _context).assignment.volunteer_of[0] == 0  # ties: the smaller id
    assert placed(twins, 1) == 1  # as good: no churn
    better = VolunteerPool(
        [attorney(0, ExperienceLevel.EXPERIENCED), attorney(1, ExperienceLevel.INTERMEDIATE)],
        VolunteerRole.ATTORNEY,
    )
    assert placed(better, 1) == 0  # a real gain moves the case


def test_the_pool_shortlist_holds_exactly_the_best_that_rank_orders() -> None:
    rng = random.Random(11)
    for _ in range(60):
        cases, volunteers = _network(rng, 3, rng.randint(1, 30))
        if rng.random() < 0.5:  # twins: equal scores, so the tie-break by id decides
            volunteers += [dataclasses.replace(v, id=uuid.UUID(int=rng.getrandbits(128))) for v in volunteers]
        pool = VolunteerPool(volunteers, VolunteerRole.ATTORNEY)
        prices = np.array([rng.choice([0.0, 0.0, 0.05, 0.2]) for _ in range(len(pool))])
        by_id = dict(zip(pool.ids, prices.tolist(), strict=True))
        for case in cases:
            for limit in (1, 3):
                shortlist = {pool.ids[i] for i in pool.top(case, _context(case), limit, prices)}
                ranked = rank(
                    case, volunteers, VolunteerRole.ATTORNEY, _context(case), limit=limit, prices=by_id
                )
                assert shortlist == {r.volunteer.id for r in ranked}
