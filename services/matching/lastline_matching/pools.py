"""Matching's volunteers in memory: each role's :class:`~lastline_matching.domain.VolunteerPool`, kept
in step with the ``volunteers`` table, so that an online decision ranks *every* eligible volunteer
(the domain's vectorised rules, well under a millisecond for thousands) instead of a SQL prefilter's
first few dozen.

The database stays the only judge of capacity: a decision reserves through the guarded update in
``store.py``, so a pool a moment behind costs at most a failed reservation (the next candidate is
taken), never an overbooking.

In step: a trigger gives each changed ``volunteers`` row a new ``version`` from a sequence (migration
0006) and each decision batch reads the rows past the highest version seen. Sequence numbers are taken
before commit, so a slow transaction can commit a smaller version after a larger one was read: a full
read every ``resync_s`` catches such rows, the last global pass's prices, and any place a rolled-back
batch took in memory.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from uuid import UUID

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_matching.domain import CaseView, Context, VolunteerPool, VolunteerView
from lastline_matching.domain.model import DEFAULT_MENTOR_CAPACITY
from lastline_matching.tables import MatchingTables
from lastline_shared.contracts.enums import VolunteerRole

LOAD_COLUMNS = frozenset({"active_cases", "reserved", "mentees", "updated_at", "version"})
"""Columns that change with every proposal and answer; the others are the profile the rules read."""


class LivePools:
    def __init__(
        self,
        tables: MatchingTables,
        *,
        mentor_capacity: int = DEFAULT_MENTOR_CAPACITY,
        resync_s: float = 5.0,
        rebuild_every_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._t = tables
        self._mentor_capacity = mentor_capacity
        self._resync_s = resync_s
        self._rebuild_every_s = rebuild_every_s
        self._clock = clock
        self._built_at = -rebuild_every_s
        self.stale = False
        """A profile changed since the pools were built: a decision that found nobody tries again
        after the next rebuild (at most every ``rebuild_every_s``: building a pool of 20,000
        volunteers takes about half a second)."""
        self._rows: dict[UUID, dict[str, Any]] = {}
        """Every volunteer's row as last read (without the profile JSON)."""
        self._views: dict[UUID, VolunteerView] = {}
        """The rules' view of each row's profile (its load is set from the row when a pool is built)."""
        self._seen = 0
        self._next_resync = 0.0
        self._prices: dict[UUID, float] = {}
        self._pools: dict[VolunteerRole, tuple[VolunteerPool, np.ndarray[Any, np.dtype[np.float64]]]] = {}
        """Per role, built on first use after a profile changed: the pool and its volunteers' prices."""

    # -- keeping in step -------------------------------------------------------------------------

    async def refresh(self, session: AsyncSession) -> None:
        """Read what changed since the last refresh (everything, when a resync is due)."""
        v, prices = self._t.volunteers, self._t.prices
        full = self._clock() >= self._next_resync
        query = select(*(column for column in v.c if column.name != "profile"))
        if not full:
            query = query.where(v.c.version > self._seen)
        rows = (await session.execute(query)).mappings().all()
        profiles_changed = False
        if full:
            self._next_resync = self._clock() + self._resync_s
            present = {row["volunteer_id"] for row in rows}
            for gone in set(self._rows) - present:
                del self._rows[gone]
                self._views.pop(gone, None)
                profiles_changed = True
            result = await session.execute(select(prices.c.volunteer_id, prices.c.price))
            read: dict[UUID, float] = {row.volunteer_id: row.price for row in result}
            if read != self._prices:
                self._prices = read
                profiles_changed = True  # the pools' price columns are built with them
        for row in rows:
            fresh = dict(row)
            old = self._rows.get(fresh["volunteer_id"])
            self._rows[fresh["volunteer_id"]] = fresh
            self._seen = max(self._seen, fresh["version"])
            if old is None or any(old[k] != fresh[k] for k in fresh if k not in LOAD_COLUMNS):
                self._views.pop(fresh["volunteer_id"], None)
                profiles_changed = True
            self._set_load(fresh["volunteer_id"], fresh["active_cases"] + fresh["reserved"])
        self.stale = self.stale or profiles_changed

    def invalidate(self) -> None:
        """A batch rolled back after taking places in memory: read everything next time."""
        self._next_resync = 0.0

    def took(self, volunteer_id: UUID) -> None:
        """A place reserved in the current batch: later decisions in it see the volunteer fuller."""
        for pool, index in self._places(volunteer_id):
            pool.take(index)

    def _set_load(self, volunteer_id: UUID, load: int) -> None:
        for pool, index in self._places(volunteer_id):
            pool.load[index] = load

    def _places(self, volunteer_id: UUID) -> Iterator[tuple[VolunteerPool, int]]:
        """The built pools holding the volunteer, with their index in each."""
        for pool, _ in self._pools.values():
            index = pool.index.get(volunteer_id)
            if index is not None:
                yield pool, index

    def _pool(self, role: VolunteerRole) -> tuple[VolunteerPool, np.ndarray[Any, np.dtype[np.float64]]]:
        if self.stale and self._clock() - self._built_at >= self._rebuild_every_s:
            self._pools.clear()
            self.stale = False
        built = self._pools.get(role)
        if built is None:
            self._built_at = self._clock()
            rows = [r for r in self._rows.values() if r["status"] == "active" and role.value in r["roles"]]
            pool = VolunteerPool((self._view(row) for row in rows), role)
            for row in rows:
                pool.load[pool.index[row["volunteer_id"]]] = row["active_cases"] + row["reserved"]
            price = np.fromiter((self._prices.get(i, 0.0) for i in pool.ids), np.float64, len(pool))
            built = self._pools[role] = (pool, price)
        return built

    def _view(self, row: Mapping[str, Any]) -> VolunteerView:
        view = self._views.get(row["volunteer_id"])
        if view is None:
            view = self._views[row["volunteer_id"]] = VolunteerView.from_row(
                row, mentor_capacity=self._mentor_capacity
            )
        return view

    # -- deciding --------------------------------------------------------------------------------

    def best(self, case: CaseView, role: VolunteerRole, context: Context, limit: int) -> list[VolunteerView]:
        """The ``limit`` eligible volunteers with the highest score minus dual price
        (:meth:`VolunteerPool.top`), as their rows are now (a pool built before a profile changed
        may shortlist someone the exact rules, applied to these, then refuse)."""
        pool, price = self._pool(role)
        shortlist = []
        for i in pool.top(case, context, limit, price).tolist():
            row = self._rows.get(pool.ids[i])
            if row is not None:
                view = self._view(row)
                shortlist.append(dataclasses.replace(view, active_load=int(pool.load[i])))
        return shortlist

    def prices(self) -> Mapping[UUID, float]:
        return self._prices
