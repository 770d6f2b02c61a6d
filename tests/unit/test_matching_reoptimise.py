"""The global pass in the service keeps only the changes every volunteer's fresh room covers."""

from __future__ import annotations

import uuid
from typing import Any

from lastline_matching.reoptimise import Change, _fitting
from lastline_shared.contracts.enums import VolunteerRole

V1, V2, V3, V4 = (uuid.UUID(int=i) for i in range(1, 5))


def _room(places: int) -> dict[str, Any]:
    return {"max_active_cases": 2, "active_cases": 2 - places, "reserved": 0}


def _change(n: int, old: uuid.UUID | None, new: uuid.UUID | None, gain: float = 0.1) -> Change:
    return Change(uuid.UUID(int=100 + n), VolunteerRole.ATTORNEY, old, new, gain)


def test_a_chain_of_moves_is_kept_whole_or_dropped_whole() -> None:
    # Case 1 moves from V1 to V2, which case 2 frees by moving to V3.
    chain = [_change(1, V1, V2), _change(2, V2, V3)]
    volunteers = {V1: _room(0), V2: _room(0), V3: _room(1)}
    assert _fitting(chain, volunteers) == sorted(chain, key=lambda ch: -ch.gain)
    # V3 filled up meanwhile: case 2 cannot move, so V2 is not freed and case 1 stays too.
    assert _fitting(chain, volunteers | {V3: _room(0)}) == []


def test_the_largest_gains_get_the_last_places() -> None:
    small, large = _change(1, None, V4, gain=0.1), _change(2, None, V4, gain=0.5)
    assert _fitting([small, large], {V4: _room(1)}) == [large]
    assert _fitting([_change(3, V4, None)], {V4: _room(0)}) == [_change(3, V4, None)]
