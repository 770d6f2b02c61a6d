"""Matching's pure domain: who may take a case (``eligibility``), who fits best (``scoring``), the
global pass that places as many cases as possible (``optimise``) and escalations (``escalation``).

No database, no Kafka: values in (``model``), decisions out. The service layer reads rows and events
into :class:`VolunteerView` / :class:`CaseView`, asks, and records what was decided.
"""

from lastline_matching.domain.eligibility import (
    Context,
    Eligible,
    Ineligible,
    Unmet,
    Verdict,
    check,
    roles_needed,
    screen,
)
from lastline_matching.domain.escalation import Shortfall, causes, due, level_due, shortfall
from lastline_matching.domain.model import CaseView, FacilityState, VolunteerView
from lastline_matching.domain.optimise import (
    Assignment,
    CandidateGraph,
    Duals,
    EligiblePairs,
    GlobalPass,
    VolunteerPool,
    candidate_graph,
    eligible_pairs,
    greedy,
    online_greedy,
    optimise,
    solve,
)
from lastline_matching.domain.scoring import COMPONENTS, DEFAULT_WEIGHTS, Ranked, Scored, Weights, rank, score

__all__ = [
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "Assignment",
    "CandidateGraph",
    "CaseView",
    "Context",
    "Duals",
    "Eligible",
    "EligiblePairs",
    "FacilityState",
    "GlobalPass",
    "Ineligible",
    "Ranked",
    "Scored",
    "Shortfall",
    "Unmet",
    "Verdict",
    "VolunteerPool",
    "VolunteerView",
    "Weights",
    "candidate_graph",
    "causes",
    "check",
    "due",
    "eligible_pairs",
    "greedy",
    "level_due",
    "online_greedy",
    "optimise",
    "rank",
    "roles_needed",
    "score",
    "screen",
    "shortfall",
    "solve",
]
