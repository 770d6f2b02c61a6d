"""The bridge from matching's rows to its domain: which roles a case needs, who is eligible, in what
order. The rules themselves live in ``lastline_matching.domain`` (pure, tested on their own)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from lastline_matching.domain.eligibility import Context
from lastline_matching.domain.model import DEFAULT_MENTOR_CAPACITY, CaseView, VolunteerView
from lastline_matching.domain.scoring import rank
from lastline_shared.contracts.enums import CaseNeed, MatchConstraint, VolunteerRole
from lastline_shared.contracts.matches import ScoreComponent


@dataclass(frozen=True, slots=True)
class Choice:
    volunteer_id: UUID
    score: float
    components: tuple[ScoreComponent, ...]
    reasons: tuple[MatchConstraint, ...]
    mentor_needed: bool


class Chooser:
    """Decisions about candidates, given the case's facts (as stored) and volunteers' rows."""

    def __init__(self, *, today: Callable[[], date], mentor_capacity: int = DEFAULT_MENTOR_CAPACITY) -> None:
        self._today = today
        self._mentor_capacity = mentor_capacity

    def roles_needed(self, facts: Mapping[str, Any]) -> list[VolunteerRole]:
        """Counsel first, then the support the case's needs name."""
        return [VolunteerRole.ATTORNEY, *(CaseNeed(need).role for need in facts.get("needs", ()))]

    def language_filter(self, facts: Mapping[str, Any], role: VolunteerRole) -> list[str] | None:
        """Languages a candidate must share with the client (an escalation's funnel); None: any."""
        if role is VolunteerRole.INTERPRETER:
            return list(facts["languages"])
        if role is VolunteerRole.ATTORNEY and CaseNeed.INTERPRETER.value not in facts.get("needs", ()):
            return list(facts["languages"])
        return None

    def choose(
        self,
        facts: Mapping[str, Any],
        rows: Sequence[Mapping[Any, Any]],
        role: VolunteerRole,
        limit: int = 3,
        *,
        mentor_available: bool = True,
    ) -> list[Choice]:
        """The ``limit`` best eligible candidates by the domain's rules and score minus the volunteer's
        dual price (``dual_price``, from the last global pass, when the row has it), best first."""
        case = CaseView.from_facts(facts)
        candidates = [VolunteerView.from_row(row, mentor_capacity=self._mentor_capacity) for row in rows]
        prices = {row["volunteer_id"]: row["dual_price"] for row in rows if row.get("dual_price")}
        return self.choose_among(
            case, candidates, role, self.context(case, mentor_available), limit=limit, prices=prices
        )

    def context(
        self, case: CaseView, mentor_available: bool, declined: frozenset[UUID] = frozenset()
    ) -> Context:
        return Context(
            today=self._today(),
            declined=declined,
            mentor_available=mentor_available,
            interpreter_available=CaseNeed.INTERPRETER in case.needs,
        )

    def choose_among(
        self,
        case: CaseView,
        candidates: Sequence[VolunteerView],
        role: VolunteerRole,
        context: Context,
        *,
        limit: int,
        prices: Mapping[UUID, float],
    ) -> list[Choice]:
        """The ``limit`` best of ``candidates`` with the constraints that held and the score's
        components (the exact rules, on the few volunteers a pool picked)."""
        return [
            Choice(r.volunteer.id, round(r.score, 4), r.components, r.reasons, r.mentor_needed)
            for r in rank(case, candidates, role, context, limit=limit, prices=prices)
        ]

    def still_fits(self, facts: Mapping[str, Any], row: Mapping[Any, Any], role: VolunteerRole) -> bool:
        return bool(row["remote"] or facts["facility_code"] in row["facilities_reachable"])
