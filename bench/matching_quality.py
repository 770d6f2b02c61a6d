"""Matching quality and speed on generated networks, without the service around it (pure domain).

For networks of 1,000 x 500, 10,000 x 5,000 and 50,000 x 20,000 (cases x volunteers) with realistic
language, facility, case-type and capacity mixes (see ``Network``):

- the online greedy baseline (cases in arrival order, each takes its best attorney with room at that
  moment, as the online path decides) against the optimum of the global pass (min-cost flow over each
  case's best candidates, proven optimal over *every* eligible pair by LP duality): matched cases and
  total score (both counted with the scores at the start of the pass), and the gap in %;
- online decisions with dual prices (as the service makes them after a global pass): each case takes
  its best attorney by score minus the attorney's price, the prices coming from a global pass over an
  *earlier* batch of cases from the same mix (another seed) on the same volunteers, as the last
  periodic pass left them; and, as a bound, with the prices of this batch's own optimum (an oracle);
- the time of the global pass (graph, solve, proof) and the number of edges;
- online decisions with dual prices and a periodic global pass over the proposals not yet answered
  (``online_with_passes``: the service's whole policy) against the same optimum;
- the online decision time per case: over the in-memory pool (``VolunteerPool.evaluate`` + pick), and
  as the service decides (the pool's shortlist, then ``rank`` on it for the proposal's reasons).

``python -m bench.matching_quality [--sizes 1000x500,10000x5000]`` runs it alone and merges its figures
into bench/results.json (``--no-merge`` prints them only); ``make bench`` runs it with the others.
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from bench.results import RESULTS, Figure, machine, report
from lastline_matching.domain import (
    CaseView,
    Context,
    VolunteerPool,
    VolunteerView,
    online_greedy,
    optimise,
    rank,
)
from lastline_matching.domain.optimise import MIN_WEIGHT, Assignment, ContextOf
from lastline_shared import reference
from lastline_shared.contracts.enums import (
    CaseNeed,
    CaseType,
    ComplexityFlag,
    ExperienceLevel,
    PracticeArea,
    VolunteerRole,
)

SIZES = ((1_000, 500), (10_000, 5_000), (50_000, 20_000))
TODAY = date(2026, 3, 2)
TOP_K = 24
RANK_SAMPLE = 200
"""Cases whose service decision (shortlist + ``rank``) is timed per size."""
PASS_BUDGET_S = 90.0
"""The global pass stops proving after the round that passes this (the largest network needs about
11 rounds and 3 minutes to be proven optimal here; see README.md)."""
PASSES = 10
"""Global passes over one network's arrivals (the service runs one a minute)."""
PASSES_UP_TO = 10_000
"""Networks up to this many cases also simulate the service's policy (each pass prices 2 networks)."""
ANSWER_WINDOW = 0.02
"""A proposal is answered once this share of the network's cases has arrived after it (the service's
pass re-optimises only unanswered proposals): 200 cases for 10,000."""
PRIOR_BUDGET_S = 30.0
"""The budget of the earlier batch's pass that prices volunteers (its duals need no proof)."""

# Client languages (ISO 639-3), preferred first, with their share of cases: Spanish dominant, then
# Indigenous Guatemalan languages (most clients also speak some Spanish), Haitian Creole, ...
CASE_LANGUAGES: list[tuple[tuple[str, ...], float]] = [
    (("spa",), 0.60),
    (("mam", "spa"), 0.035),
    (("mam",), 0.015),
    (("quc", "spa"), 0.03),
    (("quc",), 0.01),
    (("kjb", "spa"), 0.01),
    (("hat", "fra"), 0.03),
    (("hat",), 0.02),
    (("por",), 0.04),
    (("fra",), 0.02),
    (("ara",), 0.02),
    (("rus",), 0.025),
    (("ukr", "rus"), 0.01),
    (("zho",), 0.03),
    (("hin",), 0.015),
    (("pan", "hin"), 0.015),
    (("tur",), 0.01),
    (("ben",), 0.01),
    (("wol", "fra"), 0.005),
    (("vie",), 0.005),
    (("eng",), 0.04),
]
RARE = {"mam", "quc", "kjb", "wol"}
# Languages attorneys work in besides English, with the share who do.
ATTORNEY_LANGUAGES = {
    "spa": 0.55,
    "por": 0.05,
    "fra": 0.06,
    "hat": 0.02,
    "ara": 0.02,
    "rus": 0.03,
    "ukr": 0.01,
    "zho": 0.03,
    "hin": 0.02,
    "pan": 0.01,
    "tur": 0.01,
    "ben": 0.005,
    "vie": 0.01,
    "mam": 0.003,
    "quc": 0.003,
}
CASE_TYPES = {
    CaseType.ASYLUM: 0.33,
    CaseType.REMOVAL_DEFENSE: 0.20,
    CaseType.BOND: 0.20,
    CaseType.WITHHOLDING_CAT: 0.08,
    CaseType.CREDIBLE_FEAR: 0.05,
    CaseType.CANCELLATION_OF_REMOVAL: 0.04,
    CaseType.PAROLE: 0.03,
    CaseType.BIA_APPEAL: 0.03,
    CaseType.FEDERAL_HABEAS: 0.02,
    CaseType.MOTION_TO_REOPEN: 0.02,
}
AREA_SHARE = {
    PracticeArea.REMOVAL_DEFENSE: 0.8,
    PracticeArea.ASYLUM: 0.75,
    PracticeArea.BOND: 0.7,
    PracticeArea.WITHHOLDING_CAT: 0.5,
    PracticeArea.CREDIBLE_FEAR: 0.3,
    PracticeArea.CANCELLATION_OF_REMOVAL: 0.3,
    PracticeArea.PAROLE: 0.3,
    PracticeArea.MOTION_TO_REOPEN: 0.15,
    PracticeArea.CRIMMIGRATION: 0.1,
}
SENIOR_AREA_SHARE = {PracticeArea.BIA_APPEAL: 0.3, PracticeArea.FEDERAL_HABEAS: 0.15}
LEVELS = {
    ExperienceLevel.NOVICE: 0.25,
    ExperienceLevel.INTERMEDIATE: 0.35,
    ExperienceLevel.EXPERIENCED: 0.25,
    ExperienceLevel.EXPERT: 0.15,
}
FLAGS = {
    ComplexityFlag.CRIMINAL_HISTORY: 0.15,
    ComplexityFlag.PRIOR_REMOVAL_ORDER: 0.08,
    ComplexityFlag.MENTAL_COMPETENCY: 0.04,
}
CAPACITY = {1: 0.2, 2: 0.25, 3: 0.25, 4: 0.15, 5: 0.15}
PARTNERS = [f"partner-{i:02d}" for i in range(12)]
LARGE = {
    "STWRTGA", "IRWINGA", "FIPCMGA", "KRO", "STCDFTX", "STFRCTX", "KRNRCTX", "PIC", "EPC", "OTRPCNM",
    "EAZ", "ADLNTCA", "CCASDCA", "CSCNWWA", "JENADLA", "PINEPLA", "BASILLA", "MTGPCTX", "PRLDCTX",
    "ELZICDF", "DHDFNJ", "MSVPCPA", "LAWINCI", "RWCCMLA", "DENICDF",
}  # fmt: skip
"""Facilities that hold the most people: four times the share of cases of the others."""


@dataclass
class Network:
    cases: list[CaseView]
    volunteers: list[VolunteerView]


def generate(n_cases: int, n_volunteers: int, seed: int = 7) -> Network:
    """A network of ``n_cases`` open cases (in arrival order) and ``n_volunteers`` volunteers."""
    rng = random.Random(seed)
    facilities = reference.all_facilities()
    codes = [f.code for f in facilities]
    weights = [4.0 if f.code in LARGE else 1.0 for f in facilities]
    states = sorted({f.state for f in facilities})
    region_partner = {f.code: PARTNERS[states.index(f.state) % len(PARTNERS)] for f in facilities}
    nearby = {f.code: [g.code for g in facilities if reference.distance_km(f, g) < 250] for f in facilities}
    district = {f.code: f.federal_district for f in facilities}
    languages, language_weights = zip(*CASE_LANGUAGES, strict=True)
    case_types, case_type_weights = zip(*CASE_TYPES.items(), strict=True)

    cases = []
    for _ in range(n_cases):
        facility = rng.choices(codes, weights)[0]
        case_type = rng.choices(case_types, case_type_weights)[0]
        spoken = rng.choices(languages, language_weights)[0]
        flags = {f for f, p in FLAGS.items() if rng.random() < p}
        if case_type is CaseType.FEDERAL_HABEAS:
            flags.add(ComplexityFlag.FEDERAL_HABEAS)
        if case_type is CaseType.BIA_APPEAL:
            flags.add(ComplexityFlag.APPEAL)
        needs = {n for n, p in ((CaseNeed.MEDICAL_EVALUATOR, 0.05), (CaseNeed.PSYCH_EVALUATOR, 0.08),
                                (CaseNeed.COUNTRY_CONDITIONS_EXPERT, 0.1)) if rng.random() < p}  # fmt: skip
        if rng.random() < (0.5 if spoken[0] in RARE else 0.03):
            needs.add(CaseNeed.INTERPRETER)
        partner = region_partner[facility] if rng.random() < 0.6 else rng.choice(PARTNERS)
        cases.append(
            CaseView(
                id=uuid.UUID(int=rng.getrandbits(128)),
                facility_code=facility,
                court_code="LUM",
                case_type=case_type,
                languages=spoken,
                next_hearing_date=TODAY + timedelta(days=min(rng.randint(2, 30), rng.randint(2, 90))),
                detained_since=TODAY - timedelta(days=rng.randint(0, 365)),
                complexity_flags=frozenset(flags),
                needs=frozenset(needs),
                referring_partners=frozenset({partner}),
                federal_district=district[facility],
            )
        )

    volunteers = []
    roles, role_weights = zip(
        *{
            VolunteerRole.ATTORNEY: 0.7,
            VolunteerRole.INTERPRETER: 0.15,
            VolunteerRole.LAW_STUDENT: 0.05,
            VolunteerRole.MEDICAL_EVALUATOR: 0.03,
            VolunteerRole.PSYCH_EVALUATOR: 0.03,
            VolunteerRole.COUNTRY_CONDITIONS_EXPERT: 0.04,
        }.items(),
        strict=True,
    )
    for _ in range(n_volunteers):
        role = rng.choices(roles, role_weights)[0]
        home = rng.choices(codes, weights)[0]
        level = rng.choices(list(LEVELS), list(LEVELS.values()))[0]
        senior = level.rank >= ExperienceLevel.EXPERIENCED.rank
        spoken_by = {"eng"} | {lang for lang, p in ATTORNEY_LANGUAGES.items() if rng.random() < p}
        if role is VolunteerRole.INTERPRETER:
            spoken_by |= {rng.choice(languages)[0] for _ in range(rng.randint(1, 2))}
        areas = {a for a, p in AREA_SHARE.items() if rng.random() < p}
        if senior:
            areas |= {a for a, p in SENIOR_AREA_SHARE.items() if rng.random() < p}
        courts = set()
        if PracticeArea.FEDERAL_HABEAS in areas:
            courts = {district[f] for f in rng.sample(nearby[home], min(2, len(nearby[home])))} - {None}
        reachable = frozenset(rng.sample(nearby[home], min(len(nearby[home]), rng.randint(0, 3))))
        capacity = rng.choices(list(CAPACITY), list(CAPACITY.values()))[0]
        can_mentor = role is VolunteerRole.ATTORNEY and senior and rng.random() < 0.4
        volunteers.append(
            VolunteerView(
                id=uuid.UUID(int=rng.getrandbits(128)),
                roles=frozenset({role, VolunteerRole.MENTOR} if can_mentor else {role}),
                languages=frozenset(spoken_by),
                experience_level=level,
                practice_areas=frozenset(areas),
                max_active_cases=capacity,
                active_load=rng.randint(0, capacity - 1) if rng.random() < 0.3 else 0,
                facilities_reachable=reachable,
                remote=not reachable or rng.random() < 0.45,
                federal_courts=frozenset(c for c in courts if c),
                eoir_registered=role is VolunteerRole.ATTORNEY,
                wants_mentor=level is ExperienceLevel.NOVICE and rng.random() < 0.7,
                can_mentor=can_mentor,
                mentor_capacity=3 if can_mentor else 0,
                registered_by=region_partner[home] if rng.random() < 0.7 else None,
            )
        )
    return Network(cases, volunteers)


def context_of(case: CaseView) -> Context:
    """Mentors are assumed available (their capacity is not part of the assignment); an interpreter is
    available where the case asks for one."""
    return Context(
        today=TODAY, mentor_available=True, interpreter_available=CaseNeed.INTERPRETER in case.needs
    )


@dataclass(frozen=True, slots=True)
class WithPasses:
    assignment: Assignment
    passes: int
    every: int
    seconds: float


def online_with_passes(
    cases: Sequence[CaseView],
    pool: VolunteerPool,
    context_of: ContextOf,
    history: Sequence[CaseView],
    *,
    every: int,
    priced_pass: bool = True,
) -> WithPasses:
    """The service's policy (``reoptimise.py``): each case decided online by score minus price, and
    every ``every`` arrivals a pass that first prices the volunteers, from the last ``len(cases)``
    arrivals (``history``'s tail, then the arrivals so far: in the steady state, about as many as
    hold a place at once) against the pool as if they held nothing, then re-optimises (min-cost flow,
    keep bonus, score minus price unless ``priced_pass`` is off) the proposals not yet answered and the
    cases still unplaced. A proposal is answered (accepted, fixed) once ``ANSWER_WINDOW`` of the cases
    have arrived after it. Scores are counted as at the start (``online_greedy``'s convention)."""
    prices = _market_prices(list(history), pool, context_of)
    n, window = len(cases), max(1, int(len(cases) * ANSWER_WINDOW))
    live = pool.fork()
    volunteer_of = np.full(n, -1, np.int64)
    made_at = np.full(n, -1, np.int64)
    passes, pass_s = 0, 0.0
    for t, case in enumerate(cases):
        candidates = live.evaluate(case, context_of(case))
        if len(candidates.indices):
            k = int(np.argmax(live.scores(candidates) - prices[candidates.indices]))
            volunteer_of[t], made_at[t] = int(candidates.indices[k]), t
            live.take(int(candidates.indices[k]))
        if (t + 1) % every and t != n - 1:
            continue
        started = time.perf_counter()
        pass_prices = prices if priced_pass else np.zeros(len(pool))
        arrived = np.arange(t + 1)
        answered = (volunteer_of[: t + 1] >= 0) & (made_at[: t + 1] <= t - window)
        movable = arrived[~answered]
        fixed = volunteer_of[: t + 1][answered]
        view = pool.fork()
        view.load = pool.base_load + np.bincount(fixed, minlength=len(pool))
        keep_to = volunteer_of[movable].copy()
        keep_score = np.zeros(len(movable))
        for i, c in enumerate(movable.tolist()):
            if keep_to[i] >= 0:
                found = view.evaluate(cases[c], context_of(cases[c]))
                j = int(np.searchsorted(found.indices, keep_to[i]))
                if j < len(found.indices) and found.indices[j] == keep_to[i]:
                    keep_score[i] = max(view.scores(found)[j] - pass_prices[keep_to[i]], MIN_WEIGHT)
                else:
                    keep_to[i] = -1
        result = optimise(
            [cases[c] for c in movable.tolist()], view, context_of,
            keep=Assignment(keep_to, keep_score), keep_bonus=0.01, top_k=TOP_K, budget_s=PASS_BUDGET_S,
            prices=pass_prices,
        )  # fmt: skip
        moved = result.assignment.volunteer_of != volunteer_of[movable]
        volunteer_of[movable] = result.assignment.volunteer_of
        made_at[movable[moved]] = t  # a new proposal waits for its own answer
        live.load = pool.base_load + np.bincount(volunteer_of[volunteer_of >= 0], minlength=len(pool))
        prices = _market_prices(list(history[t + 1 :]) + list(cases[: t + 1]), pool, context_of)
        passes, pass_s = passes + 1, pass_s + time.perf_counter() - started
    score_of = np.zeros(n)
    for c in np.flatnonzero(volunteer_of >= 0).tolist():
        found = pool.evaluate(cases[c], context_of(cases[c]))
        j = int(np.searchsorted(found.indices, volunteer_of[c]))
        score_of[c] = found.fixed[j] + pool.load_score(int(volunteer_of[c]))
    return WithPasses(Assignment(volunteer_of, score_of), passes, every, pass_s)


def _market_prices(demand: Sequence[CaseView], pool: VolunteerPool, context_of: ContextOf) -> np.ndarray:
    priced = optimise(demand, pool, context_of, top_k=TOP_K, budget_s=PRIOR_BUDGET_S)
    assert priced.duals is not None
    return priced.duals.prices()


def _ms(seconds: Sequence[float] | np.ndarray, q: float) -> float:
    return float(np.quantile(np.asarray(seconds), q)) * 1000


def measure(n_cases: int, n_volunteers: int) -> list[Figure]:
    network = generate(n_cases, n_volunteers)
    built = time.perf_counter()
    pool = VolunteerPool(network.volunteers, VolunteerRole.ATTORNEY)
    pool_s = time.perf_counter() - built
    cases = network.cases

    greedy, durations = online_greedy(cases, pool, context_of)
    # The last periodic pass's prices: a pass over an earlier batch (same mix, another seed).
    earlier = generate(n_cases, 0, seed=8).cases
    prior = optimise(earlier, pool, context_of, top_k=TOP_K, budget_s=PRIOR_BUDGET_S)
    assert prior.duals is not None
    priced, _ = online_greedy(cases, pool, context_of, prices=prior.duals.prices())
    started = time.perf_counter()
    result = optimise(cases, pool, context_of, top_k=TOP_K, include=greedy, budget_s=PASS_BUDGET_S)
    pass_s = time.perf_counter() - started
    best = result.assignment
    assert best.matched >= greedy.matched
    oracle = None
    if result.duals is not None:
        oracle, _ = online_greedy(cases, pool, context_of, prices=result.duals.prices())
    optimum = "min-cost-flow optimum" if result.proven_optimal else "min-cost-flow (budget, not proven)"

    # The decision as the service makes it (``LivePools.best`` + ``Chooser.choose_among``): the
    # pool's shortlist of the best few by score minus price, then ``rank`` on them for the reasons
    # and the score's components that the proposal carries.
    rng = random.Random(1)
    prices = prior.duals.prices()
    by_id = dict(zip(pool.ids, prices.tolist(), strict=True))
    rank_s = []
    for case in rng.sample(cases, min(RANK_SAMPLE, len(cases))):
        context = context_of(case)
        started = time.perf_counter()
        shortlist = [pool.volunteers[i] for i in pool.top(case, context, 3, prices)]
        rank(case, shortlist, VolunteerRole.ATTORNEY, context, limit=3, prices=by_id)
        rank_s.append(time.perf_counter() - started)

    places = int(pool.remaining.sum())
    size = f"{n_cases:,} cases x {n_volunteers:,} volunteers ({len(pool):,} attorneys, {places:,} places)"
    ranked = f"{size}; {len(rank_s)} cases: the whole pool's shortlist of 3, then the exact rules on them"
    proof = (
        "proven optimal over all"
        if result.proven_optimal
        else f"budget of {PASS_BUDGET_S:.0f}s spent, {result.cases_open:,} cases could still improve, of"
    )
    graph = (
        f"{size}; graph of {result.graph.edges:,} edges (each case's top {TOP_K}, each volunteer's best, "
        f"greedy's pairs, {'+'.join(f'{a:,}' for a in result.added) or 'none'} added), "
        f"{proof} {result.eligible_pairs:,} eligible pairs, {result.rounds} round(s)"
    )
    where = machine()
    phases = ", ".join(f"{name} {t:.1f}s" for name, t in result.seconds.items())

    def gap(found: float, optimum: float) -> float:
        return 100 * (optimum - found) / optimum if optimum else 0.0

    policy: list[Figure] = []
    if n_cases <= PASSES_UP_TO:
        every = max(1, n_cases // PASSES)
        for priced_pass, label in ((True, "score minus price"), (False, "score alone")):
            sim = online_with_passes(cases, pool, context_of, earlier, every=every, priced_pass=priced_pass)
            note = (
                f"{size}; {sim.passes} passes (every {every:,} arrivals), each pricing from the last "
                f"{n_cases:,} arrivals, then re-optimising the proposals not yet answered (answered "
                f"{ANSWER_WINDOW:.0%} of the cases later) and the unplaced cases by {label}; "
                f"{sim.assignment.matched:,} placed (optimum {best.matched:,}); passes {sim.seconds:.1f}s"
            )
            name = f"matching {n_cases}x{n_volunteers}: online + periodic pass by {label}, gap to optimum"
            value = gap(sim.assignment.total_score, best.total_score)
            policy.append(Figure(name, value, "%", None, None, where, note))
    gap_score, gap_matched = gap(greedy.total_score, best.total_score), gap(greedy.matched, best.matched)
    priced_note = (
        f"{graph}; online with the prices of a pass over an earlier batch ({prior.rounds} round(s), "
        f"{'proven' if prior.proven_optimal else 'budget'}): {priced.matched:,} placed, matched gap "
        f"{gap(priced.matched, best.matched):.2f}%"
    )
    oracle_figures = []
    if oracle is not None:
        oracle_figures.append(
            Figure(f"matching {n_cases}x{n_volunteers}: online with this batch's duals (oracle) gap, score",
                   gap(oracle.total_score, best.total_score), "%", None, None, where,
                   f"{graph}; a bound: the prices of this batch's own optimum; {oracle.matched:,} placed, "
                   f"matched gap {gap(oracle.matched, best.matched):.2f}%")
        )  # fmt: skip
    return [
        Figure(f"matching {n_cases}x{n_volunteers}: matched (greedy online)", greedy.matched, "cases",
               optimum, best.matched, where, graph),
        Figure(f"matching {n_cases}x{n_volunteers}: total score (greedy online)", greedy.total_score, "score",
               optimum, best.total_score, where, graph),
        Figure(f"matching {n_cases}x{n_volunteers}: greedy gap to optimum, score", gap_score, "%",
               None, None, where, f"{graph}; matched gap {gap_matched:.2f}%"),
        Figure(f"matching {n_cases}x{n_volunteers}: matched (online with duals)", priced.matched, "cases",
               optimum, best.matched, where, priced_note),
        Figure(f"matching {n_cases}x{n_volunteers}: total score (online with duals)", priced.total_score,
               "score", optimum, best.total_score, where, priced_note),
        Figure(f"matching {n_cases}x{n_volunteers}: online with duals gap to optimum, score",
               gap(priced.total_score, best.total_score), "%", None, None, where, priced_note),
        *oracle_figures,
        Figure(f"matching {n_cases}x{n_volunteers}: global pass time", pass_s, "s", None, None, where,
               f"{graph}; {phases}; pool built in {pool_s:.2f}s"),
        Figure(f"matching {n_cases}x{n_volunteers}: online decision p50 (pool)", _ms(durations, 0.5), "ms",
               None, None, where, f"{size}; whole pool, vectorised"),
        Figure(f"matching {n_cases}x{n_volunteers}: online decision p99 (pool)", _ms(durations, 0.99), "ms",
               None, None, where, f"{size}; whole pool, vectorised"),
        Figure(f"matching {n_cases}x{n_volunteers}: service decision p50 (shortlist + rank)",
               _ms(rank_s, 0.5), "ms", None, None, where, ranked),
        Figure(f"matching {n_cases}x{n_volunteers}: service decision p99 (shortlist + rank)",
               _ms(rank_s, 0.99), "ms", None, None, where, ranked),
        *policy,
    ]  # fmt: skip


def run(sizes: Sequence[tuple[int, int]] = SIZES) -> list[Figure]:
    figures: list[Figure] = []
    for n_cases, n_volunteers in sizes:
        started = time.perf_counter()
        figures += measure(n_cases, n_volunteers)
        print(
            f"matching quality {n_cases:,} x {n_volunteers:,}: {time.perf_counter() - started:.1f}s",
            flush=True,
        )
    return figures


def _merge(figures: list[Figure]) -> list[Figure]:
    """The figures already in results.json but these (replaced by name): a run of this benchmark alone
    keeps the others' figures."""
    names = {f.name for f in figures}
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    return [Figure(**f) for f in kept if f["name"] not in names] + figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(f"{c}x{v}" for c, v in SIZES))
    parser.add_argument("--no-merge", action="store_true", help="print the figures, leave results.json")
    args = parser.parse_args()
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    figures = run([(c, v) for c, v in sizes])
    if args.no_merge:
        for f in figures:
            baseline = f" (baseline {f.baseline_value:.6g})" if f.baseline_value is not None else ""
            print(f"{f.name}: {f.value:.6g} {f.unit}{baseline}")
    else:
        report(_merge(figures))


if __name__ == "__main__":
    main()
