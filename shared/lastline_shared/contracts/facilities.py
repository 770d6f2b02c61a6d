"""Events of the ``facilities`` topic, keyed by ``facility_code``."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import model_validator
from pydantic_core import PydanticCustomError

from lastline_shared.contracts.base import Event
from lastline_shared.contracts.enums import FacilityPauseReason, FacilityStatus
from lastline_shared.contracts.primitives import FacilityCode, LongText, ShortText, Timestamp
from lastline_shared.contracts.topics import FACILITIES


class FacilityStatusChanged(Event):
    """Placements at a facility opened or paused (phones or visits cut, lockdown, ...)."""

    event_type: ClassVar[str] = "facility-status-changed"
    topic: ClassVar[str] = FACILITIES.name

    facility_code: FacilityCode
    status: FacilityStatus
    reason: FacilityPauseReason | None = None
    """Why placements are paused; required when paused."""
    note: LongText | None = None
    """Staff's explanation; never client details."""
    effective_at: Timestamp
    changed_by: ShortText | None = None
    """The staff account that made the change."""

    @model_validator(mode="after")
    def _paused_needs_reason(self) -> Self:
        if self.status is FacilityStatus.PAUSED and self.reason is None:
            raise PydanticCustomError("reason_required", "A paused facility needs a reason")
        return self
