"""The bridge from matching's rows to its domain: which roles a case needs, who is eligible, in what
order. The rules themselves live in ``lastline_matching.domain`` (pure, tested on their own)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from lastline_shared.contracts.enums import CaseNeed, MatchConstraint, ScoreComponentName, VolunteerRole
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

    def roles_needed(self, facts: Mapping[str, Any]) -> list[VolunteerRole]:
        """Counsel first, then the support the case's needs name."""
        return [VolunteerRole.ATTORNEY, *(CaseNeed(need).role for need in facts.get("needs", ()))]

    def language_filter(self, facts: Mapping[str, Any], role: VolunteerRole) -> list[str] | None:
        """Languages a candidate must share with the client for the cheap prefilter; None: any."""
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
    ) -> list[Choice]:
        """The ``limit`` best eligible candidates, best first."""
        complex_case = bool(_COMPLEX & set(facts.get("complexity_flags", ())))
        preferred = facts["languages"][0]
        scored: list[tuple[float, str, Mapping[Any, Any], float, float, bool]] = []
        for row in rows:
            novice = row["experience_level"] == "novice"
            competent = role is not VolunteerRole.ATTORNEY or facts["case_type"] in row["practice_areas"]
            if not competent and not (novice and not complex_case):
                continue
            load = (row["active_cases"] + row["reserved"]) / max(row["max_active_cases"], 1)
            language = 1.0 if preferred in row["languages"] else 0.5
            score = (2 * language + (1 - load)) / 3
            scored.append((-score, str(row["volunteer_id"]), row, language, load, novice))
        scored.sort(key=lambda item: (item[0], item[1]))
        choices = []
        for negative, _, row, language, load, novice in scored[:limit]:
            components = (
                ScoreComponent(factor=ScoreComponentName.LANGUAGE, value=language, weight=2.0),
                ScoreComponent(factor=ScoreComponentName.LOAD, value=round(1 - load, 4), weight=1.0),
            )
            reasons = (
                MatchConstraint.ROLE_FITS,
                MatchConstraint.CAPACITY_AVAILABLE,
                MatchConstraint.FACILITY_OPEN,
            )
            mentor = novice and role is VolunteerRole.ATTORNEY
            choices.append(Choice(row["volunteer_id"], round(-negative, 4), components, reasons, mentor))
        return choices

    def still_fits(self, facts: Mapping[str, Any], row: Mapping[Any, Any], role: VolunteerRole) -> bool:
        return bool(row["remote"] or facts["facility_code"] in row["facilities_reachable"])


_COMPLEX = {"criminal_history", "federal_habeas", "appeal"}
