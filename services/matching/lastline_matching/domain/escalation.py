"""Escalations: a case still missing someone 14, 7 and 3 days before its hearing tells staff what.

:func:`level_due` says which level a case reaches today (once per level, and a case first seen late
goes straight to the level it is at); :func:`shortfall` says, per missing role, why nobody can be
proposed: the furthest constraint any volunteer got to in :func:`~.eligibility.check`'s funnel
(everyone who speaks the language is full: ``no_capacity``), or that proposals await an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from lastline_matching.domain.eligibility import Context, Eligible, Unmet, check, hearing_too_soon
from lastline_matching.domain.model import CaseView, VolunteerView
from lastline_shared.contracts.enums import EscalationCause, EscalationLevel, VolunteerRole

LEVELS = tuple(sorted(EscalationLevel, reverse=True))
"""14, 7, 3 days before the hearing."""


def level_due(days_to_hearing: int | None, raised: int | None) -> EscalationLevel | None:
    """The level a case ``days_to_hearing`` from its hearing reaches, unless that level (or a more
    urgent one) was ``raised`` already; None when none is due (no hearing, too far, or past)."""
    if days_to_hearing is None or days_to_hearing < 0:
        return None
    level = min((lv for lv in LEVELS if days_to_hearing <= lv), default=None)
    if level is None or (raised is not None and raised <= level):
        return None
    return level


def due(cases: Iterable[tuple[CaseView, int | None]], today: date) -> list[tuple[CaseView, EscalationLevel]]:
    """Of (case, level raised so far) pairs of cases still missing someone, those that escalate today."""
    found = []
    for case, raised in cases:
        level = level_due(case.days_to_hearing(today), raised)
        if level is not None:
            found.append((case, level))
    return found


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why a role is still unfilled on a case."""

    role: VolunteerRole
    causes: tuple[EscalationCause, ...]
    furthest: Unmet | None
    """The constraint the most suitable volunteers failed (None when someone is eligible)."""
    eligible: int
    """Volunteers who could be proposed now."""


def shortfall(
    case: CaseView,
    role: VolunteerRole,
    volunteers: Iterable[VolunteerView],
    context: Context,
    *,
    proposals_open: int = 0,
) -> Shortfall:
    """What is missing for ``role`` on ``case`` among ``volunteers`` (all active ones, or the service's
    prefiltered candidates)."""
    furthest: Unmet | None = None
    eligible = 0
    for volunteer in volunteers:
        verdict = check(case, volunteer, role, context)
        if isinstance(verdict, Eligible):
            eligible += 1
        elif furthest is None or verdict.unmet.stage > furthest.stage:
            furthest = verdict.unmet
    found: tuple[EscalationCause, ...] = ()
    if eligible:
        furthest = None
    else:
        if furthest is None:  # nobody to check: the case's own state, or nobody at all
            furthest = (
                Unmet.FACILITY_PAUSED
                if context.facility_paused
                else Unmet.NOT_AVAILABLE_IN_TIME
                if hearing_too_soon(case, context)
                else Unmet.NO_ROLE
            )
        found = (furthest.escalation_cause,)
    if proposals_open:
        found += (EscalationCause.AWAITING_ANSWER,)
    return Shortfall(role, found, furthest, eligible)


def causes(shortfalls: Sequence[Shortfall]) -> tuple[EscalationCause, ...]:
    """The distinct causes of several roles' shortfalls, in order: the contract's ``causes``."""
    return tuple(dict.fromkeys(cause for s in shortfalls for cause in s.causes))
