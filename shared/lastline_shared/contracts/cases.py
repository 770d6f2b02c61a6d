"""Events of the ``cases`` topic, keyed by ``case_id``.

A case here is pseudonymous: a random ``case_id`` and what matching needs. The client's identity stays
in intake and reaches a volunteer only through the audited case packet, after they accept.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from lastline_shared.contracts.base import Event
from lastline_shared.contracts.enums import CaseChange, CaseOutcome
from lastline_shared.contracts.primitives import CaseId, Day, UniqueTuple
from lastline_shared.contracts.profiles import CaseFacts, PartnerRef
from lastline_shared.contracts.topics import CASES


class _Case(Event):
    topic: ClassVar[str] = CASES.name

    case_id: CaseId
    """Pseudonymous id, random, issued by intake."""


class CaseSnapshot(CaseFacts, _Case):
    referrals: tuple[PartnerRef, ...] = Field(min_length=1, max_length=20)
    """The referring partners and their ids for the case (for their webhooks and reports)."""


class CaseOpened(CaseSnapshot):
    """A case needs a volunteer."""

    event_type: ClassVar[str] = "case-opened"


class CaseUpdated(CaseSnapshot):
    """A case changed (hearing moved, transfer, needs); carries the whole current case."""

    event_type: ClassVar[str] = "case-updated"

    changes: UniqueTuple[CaseChange] = Field(min_length=1, max_length=len(CaseChange))


class CaseClosed(_Case):
    """A case left the network, with its outcome."""

    event_type: ClassVar[str] = "case-closed"

    outcome: CaseOutcome
    closed_on: Day
