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
        self, facts: Mapping[str, Any], rows: Sequence[Mapping[Any, Any]], role: VolunteerRole
    ) -> list[Choice]:
        """The eligible candidates, best first."""
        choices = []
        for row in rows:
            profile = row["profile"]
            competent = role is not VolunteerRole.ATTORNEY or facts["case_type"] in profile["practice_areas"]
            novice = profile["experience_level"] == "novice"
            complex_case = bool(_COMPLEX & set(facts.get("complex_flags", facts.get("complexity_flags", ()))))
            if not competent and not (novice and not complex_case):
                continue
            load = (row["active_cases"] + row["reserved"]) / max(row["max_active_cases"], 1)
            language = 1.0 if facts["languages"][0] in row["languages"] else 0.5
            components = (
                ScoreComponent(factor=ScoreComponentName.LANGUAGE, value=language, weight=2.0),
                ScoreComponent(factor=ScoreComponentName.LOAD, value=round(1 - load, 4), weight=1.0),
            )
            score = round((2 * language + (1 - load)) / 3, 4)
            reasons = [
                MatchConstraint.ROLE_FITS,
                MatchConstraint.CAPACITY_AVAILABLE,
                MatchConstraint.FACILITY_OPEN,
            ]
            choices.append(
                Choice(
                    row["volunteer_id"],
                    score,
                    components,
                    tuple(reasons),
                    novice and role is VolunteerRole.ATTORNEY,
                )
            )
        return sorted(choices, key=lambda c: (-c.score, str(c.volunteer_id)))

    def still_fits(self, facts: Mapping[str, Any], row: Mapping[Any, Any], role: VolunteerRole) -> bool:
        return bool(row["remote"] or facts["facility_code"] in row["facilities_reachable"])


_COMPLEX = {"criminal_history", "federal_habeas", "appeal"}
