"""The public view: aggregates only, no count that could single a person out.

A count from 1 to 4 is suppressed (``null``); zero singles out no one and is shown. In a breakdown
whose rows partition a total, a lone suppressed count could be worked out from the others, so the
smallest other non-zero count of that column is suppressed too. A share is suppressed with its
numerator or denominator, a median or percentile when it stands on fewer than 5 cases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lastline_reporting.models import Row

THRESHOLD = 5

R = TypeVar("R", bound=Row)


@dataclass(frozen=True)
class Disclosure:
    counts: tuple[str, ...]
    shares: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """share field -> (numerator, denominator) count fields."""
    durations: Mapping[str, str] = field(default_factory=dict)
    """duration field -> the count of cases it stands on."""
    partition: bool = True
    hidden: tuple[str, ...] = ()
    """Fields never shown publicly."""


def suppress(value: int | None) -> int | None:
    return None if value is not None and 0 < value < THRESHOLD else value


def suppress_column(values: Sequence[int | None], *, partition: bool) -> list[int | None]:
    out = [suppress(v) for v in values]
    lone = sum(1 for before, after in zip(values, out, strict=True) if before is not None and after is None)
    if partition and lone == 1:
        visible = [(v, i) for i, v in enumerate(out) if v]
        if visible:
            out[min(visible)[1]] = None
    return out


def public_rows(rows: Sequence[R], rule: Disclosure) -> list[R]:
    dumped: list[dict[str, Any]] = [row.model_dump() for row in rows]
    for name in rule.counts:
        column = suppress_column([d[name] for d in dumped], partition=rule.partition)
        for d, value in zip(dumped, column, strict=True):
            d[name] = value
    for d, original in zip(dumped, rows, strict=True):
        for share, (part, whole) in rule.shares.items():
            if d[part] is None or d[whole] is None:
                d[share] = None
        for duration, base in rule.durations.items():
            n = getattr(original, base)
            if n is None or n < THRESHOLD:
                d[duration] = None
        for name in rule.hidden:
            d[name] = None
    return [type(original).model_validate(d) for d, original in zip(dumped, rows, strict=True)]
