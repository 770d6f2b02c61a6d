"""The network's calendar: hearing dates and deadlines are local days, not UTC's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from zoneinfo import ZoneInfo


def network_today(timezone: str) -> Callable[[], date]:
    """A function returning today's date in ``timezone`` (an IANA name such as America/New_York)."""
    zone = ZoneInfo(timezone)
    return lambda: datetime.now(zone).date()
