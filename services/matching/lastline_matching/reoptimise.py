"""The periodic global pass in the service: re-optimise open proposals so that a greedy early choice
does not block a later, harder case.

One transaction per pass, under a transaction-scoped advisory lock (one instance at a time):

1. read the open cases that are not urgent (urgent ones are offered to several volunteers at once and
   left alone), their single open proposal per role if any, their declines, and the active volunteers;
2. per role, solve the min-cost assignment (``domain.optimise``) with each open proposal's place
   counted as free and its pair given a small bonus (a proposal moves only for a real gain), within a
   time budget, in a worker thread (the event loop keeps serving);
3. where the optimum differs, lock what the change touches with ``SKIP LOCKED`` (the case, the open
   proposal, the volunteers): anything locked by a decision or an answer in progress is left as it is,
   so an answer is never overtaken. Changes are kept only while every volunteer's fresh room covers
   them, then open proposals are retracted (``match-retracted``, ``reoptimised``) and the optimal ones
   proposed, through the guarded reservation and the outbox, in the same transaction;
4. each volunteer's dual price (the value of one more of their places to the optimum) is stored in
   ``volunteer_prices``, and online decisions subtract it from scores (see ``choosing.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import structlog
from sqlalchemy import and_, delete, insert, or_, select, text, union_all
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_matching.domain import CaseView, Context, VolunteerPool, VolunteerView, optimise
from lastline_matching.domain.optimise import MIN_WEIGHT, Assignment, GlobalPass
from lastline_matching.placement import Placement
from lastline_shared.contracts.enums import CaseNeed, RetractionReason, VolunteerRole

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PassLimits:
    budget_s: float = 5.0
    """The solver stops proving after the round that passes this."""
    max_cases: int = 5_000
    """Cases per pass, the closest hearings first."""
    keep_bonus: float = 0.01
    """Added to an open proposal's score: it moves only for a larger gain."""
    max_changes: int = 200
    """Open proposals moved per pass at most (the largest gains first)."""
    pricing_days: int = 90
    """The cases opened in this many days price the volunteers (about how long a case holds a place)."""


@dataclass(frozen=True, slots=True)
class Change:
    case_id: UUID
    role: VolunteerRole
    old: UUID | None
    """The volunteer of the open proposal to retract (None: the case had no offer)."""
    new: UUID | None
    """The volunteer to propose to (None: the optimum leaves the case without one)."""
    gain: float


@dataclass(frozen=True, slots=True)
class _Problem:
    """One role's part of a pass, as read from the database."""

    role: VolunteerRole
    cases: list[CaseView]
    contexts: dict[UUID, Context]
    volunteers: list[VolunteerView]
    current: dict[UUID, UUID]
    """Case -> volunteer of its movable open proposal."""


class Reoptimiser:
    def __init__(self, placement: Placement, *, limits: PassLimits = PassLimits(), schema: str) -> None:
        self._placement = placement
        self._store = placement.store
        self._limits = limits
        self._lock_key = f"lastline-reoptimise:{schema}"
        self.last: dict[VolunteerRole, GlobalPass] = {}
        """The last pass's result per role (for tests and logs)."""
        self.market: dict[VolunteerRole, GlobalPass] = {}
        """The last pricing solve per role: its duals are the volunteers' prices."""

    async def run(self, session: AsyncSession, now: datetime) -> int:
        """One global pass; returns how many cases changed hands (0 if another instance holds it)."""
        locked = await session.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtext(:key))"), {"key": self._lock_key}
        )
        if not locked.scalar():
            return 0
        started = time.monotonic()
        everyone = await self._everyone(session)
        markets = await self._read_market(session, now, everyone)
        prices: dict[UUID, float] = {}
        for market in markets:
            budget = max(0.1, self._limits.budget_s / 2 - (time.monotonic() - started))
            priced = await asyncio.to_thread(self._price, market, budget)
            self.market[market.role] = priced
            if priced.duals is not None:
                for vid, price in zip(priced.graph.volunteer_ids, priced.duals.prices(), strict=True):
                    prices[vid] = max(prices.get(vid, 0.0), float(price))
        await self._store_prices(session, prices)
        self._placement.pools.invalidate()  # this instance's next decisions read the new prices
        changes: list[Change] = []
        for problem in await self._read(session, everyone):
            budget = max(0.1, self._limits.budget_s - (time.monotonic() - started))
            result, found = await asyncio.to_thread(self._solve, problem, budget, prices)
            self.last[problem.role] = result
            changes += found
        applied = await self._apply(session, changes, now)
        if changes:
            log.info("global pass", changes=len(changes), applied=applied, seconds=time.monotonic() - started)
        return applied

    # -- reading --------------------------------------------------------------------------------

    async def _everyone(self, session: AsyncSession) -> list[VolunteerView]:
        v = self._store.t.volunteers
        active = (
            await session.execute(
                select(*(col for col in v.c if col.name != "profile")).where(v.c.status == "active")
            )
        ).mappings()
        return [VolunteerView.from_row(dict(x), mentor_capacity=self._store.mentor_capacity) for x in active]

    async def _read_market(
        self, session: AsyncSession, now: datetime, everyone: Sequence[VolunteerView]
    ) -> list[_Problem]:
        """Per role, the demand that prices the volunteers: the cases opened in the last
        ``pricing_days`` (about as long as a case holds a place; the most recent ``max_cases``), as
        the cases of the coming weeks will look, against the active volunteers as if those cases held
        none of their places."""
        t, chooser = self._store.t, self._placement.chooser
        c, m, p = t.cases, t.matches, t.proposals
        since = now - timedelta(days=self._limits.pricing_days)
        cases = (
            await session.execute(
                select(c.c.case_id, c.c.facts)
                .where(c.c.opened_at >= since)
                .order_by(c.c.opened_at.desc())
                .limit(self._limits.max_cases)
            )
        ).all()
        if not cases:
            return []
        ids = [row.case_id for row in cases]
        held: Counter[tuple[UUID, str]] = Counter()
        for row in await session.execute(
            union_all(
                select(m.c.volunteer_id, m.c.role).where(m.c.case_id.in_(ids), m.c.status == "active"),
                select(p.c.volunteer_id, p.c.role).where(p.c.case_id.in_(ids), p.c.status == "open"),
            )
        ):
            held[(row.volunteer_id, row.role)] += 1
        today = self._placement.today()
        mentor_available = any(x.mentor_room for x in everyone)
        by_role: dict[VolunteerRole, _Problem] = {}
        for row in cases:
            view = CaseView.from_facts(row.facts)
            context = Context(
                today=today,
                mentor_available=mentor_available,
                interpreter_available=CaseNeed.INTERPRETER in view.needs,
            )
            for role in chooser.roles_needed(row.facts):
                problem = by_role.get(role)
                if problem is None:
                    problem = by_role[role] = _Problem(role, [], {}, [], {})
                problem.cases.append(view)
                problem.contexts[view.id] = context
        for role, problem in by_role.items():
            problem.volunteers.extend(
                dataclasses.replace(x, active_load=max(0, x.active_load - held[(x.id, role.value)]))
                for x in everyone
                if role in x.roles
            )
        return list(by_role.values())

    async def _read(self, session: AsyncSession, everyone: Sequence[VolunteerView]) -> list[_Problem]:
        t, chooser = self._store.t, self._placement.chooser
        c, f, m, p, d = t.cases, t.facilities, t.matches, t.proposals, t.declines
        today = self._placement.today()
        paused = select(f.c.facility_code).where(f.c.paused)
        urgent_until = today + timedelta(days=self._placement.timing.urgent_days)
        cases = (
            await session.execute(
                select(c.c.case_id, c.c.facts)
                .where(c.c.status == "open", c.c.facility_code.not_in(paused))
                .where(c.c.next_hearing_date.is_(None) | (c.c.next_hearing_date > urgent_until))
                .order_by(c.c.next_hearing_date.asc().nulls_last(), c.c.opened_at, c.c.case_id)
                .limit(self._limits.max_cases)
            )
        ).all()
        if not cases:
            return []
        ids = [row.case_id for row in cases]
        matched = {
            (row.case_id, row.role)
            for row in await session.execute(
                select(m.c.case_id, m.c.role).where(m.c.case_id.in_(ids), m.c.status == "active")
            )
        }
        open_to: dict[tuple[UUID, str], list[UUID]] = defaultdict(list)
        for offer in await session.execute(
            select(p.c.case_id, p.c.role, p.c.volunteer_id).where(p.c.case_id.in_(ids), p.c.status == "open")
        ):
            open_to[(offer.case_id, offer.role)].append(offer.volunteer_id)
        declined: dict[UUID, set[UUID]] = defaultdict(set)
        for no in await session.execute(select(d.c.case_id, d.c.volunteer_id).where(d.c.case_id.in_(ids))):
            declined[no.case_id].add(no.volunteer_id)
        mentor_available = any(x.mentor_room for x in everyone)

        by_role: dict[VolunteerRole, _Problem] = {}
        for row in cases:
            view = CaseView.from_facts(row.facts)
            for role in chooser.roles_needed(row.facts):
                offers = open_to.get((row.case_id, role.value), [])
                if (row.case_id, role.value) in matched or len(offers) > 1:
                    continue  # placed, or offered to several: not the pass's business
                problem = by_role.get(role)
                if problem is None:
                    problem = by_role[role] = _Problem(role, [], {}, [], {})
                problem.cases.append(view)
                problem.contexts[view.id] = Context(
                    today=today,
                    declined=frozenset(declined.get(row.case_id, ())),
                    mentor_available=mentor_available,
                    interpreter_available=CaseNeed.INTERPRETER in view.needs,
                )
                if offers:
                    problem.current[view.id] = offers[0]
        for problem in by_role.values():
            # An open proposal's place is the pass's to give: counted as free.
            movable = Counter(problem.current.values())
            problem.volunteers.extend(
                dataclasses.replace(x, active_load=x.active_load - movable[x.id]) if x.id in movable else x
                for x in everyone
                if problem.role in x.roles
            )
        return list(by_role.values())

    # -- solving --------------------------------------------------------------------------------

    def _price(self, market: _Problem, budget_s: float) -> GlobalPass:
        pool = VolunteerPool(market.volunteers, market.role)
        return optimise(market.cases, pool, lambda case: market.contexts[case.id], budget_s=budget_s)

    def _solve(
        self, problem: _Problem, budget_s: float, prices: Mapping[UUID, float]
    ) -> tuple[GlobalPass, list[Change]]:
        pool = VolunteerPool(problem.volunteers, problem.role)
        price = np.fromiter((prices.get(i, 0.0) for i in pool.ids), np.float64, len(pool))
        contexts = problem.contexts
        keep_to = np.full(len(problem.cases), -1, np.int64)
        keep_score = np.zeros(len(problem.cases))
        for i, case in enumerate(problem.cases):
            current = problem.current.get(case.id)
            if current is None or current not in pool.index:
                continue
            candidates = pool.evaluate(case, contexts[case.id])
            k = int(np.searchsorted(candidates.indices, pool.index[current]))
            if k < len(candidates.indices) and candidates.indices[k] == pool.index[current]:
                net = pool.scores(candidates)[k] - price[candidates.indices[k]]
                keep_to[i], keep_score[i] = candidates.indices[k], max(net, MIN_WEIGHT)
        # Score minus price, as online decisions rank: a pass by score alone would hand the cases
        # open now the volunteers later cases need (bench.matching_quality measured it: worse than
        # online decisions with prices and no pass at all).
        result = optimise(
            problem.cases,
            pool,
            lambda case: contexts[case.id],
            keep=Assignment(keep_to, keep_score),
            keep_bonus=self._limits.keep_bonus,
            budget_s=budget_s,
            prices=price,
        )
        best = result.assignment
        changes = []
        for i, case in enumerate(problem.cases):
            old = problem.current.get(case.id)
            new = pool.ids[best.volunteer_of[i]] if best.volunteer_of[i] >= 0 else None
            if old != new:
                gain = float(best.score_of[i] - keep_score[i])
                changes.append(Change(case.id, problem.role, old, new, gain))
        return result, changes

    # -- applying -------------------------------------------------------------------------------

    async def _apply(self, session: AsyncSession, found: Sequence[Change], now: datetime) -> int:
        """Apply what can be applied without waiting for anyone, without overbooking anyone: move
        open proposals, at most ``max_changes``, the largest gains first (the rows stay locked until
        the pass commits; a pass that moved 3,000 held the consumer up for 25-108 s under
        ``make chaos``). A case without an offer is not proposed to here but queued for the online
        path when a move freed the place the optimum gives it."""
        moves = sorted((ch for ch in found if ch.old is not None), key=lambda ch: -ch.gain)
        changes = await self._move(session, moves[: self._limits.max_changes], now)
        freed = {ch.old for ch in changes}
        unoffered = sorted({ch.case_id for ch in found if ch.old is None and ch.new in freed})
        if unoffered:
            await self._store.queue(session, await self._store.not_queued(session, unoffered))
        return len(changes) + len(unoffered)

    async def _move(self, session: AsyncSession, changes: list[Change], now: datetime) -> list[Change]:
        """Retract and propose again what can be without waiting for anyone; returns what was."""
        if not changes:
            return []
        t = self._store.t
        c, p, v = t.cases, t.proposals, t.volunteers
        case_ids = sorted({ch.case_id for ch in changes})
        cases = {
            row["case_id"]: row
            for row in (
                await session.execute(
                    select(c)
                    .where(c.c.case_id.in_(case_ids), c.c.status == "open")
                    .order_by(c.c.case_id)
                    .with_for_update(skip_locked=True)
                )
            ).mappings()
        }
        # With the case locked nobody can offer it again; compare its offers with what was solved.
        offers: dict[tuple[UUID, str], list[UUID]] = defaultdict(list)
        for row in await session.execute(
            select(p.c.case_id, p.c.role, p.c.volunteer_id).where(
                p.c.case_id.in_(list(cases)), p.c.status == "open"
            )
        ):
            offers[(row.case_id, row.role)].append(row.volunteer_id)
        changes = [
            ch
            for ch in changes
            if ch.case_id in cases and offers.get((ch.case_id, ch.role.value), []) == _listed(ch.old)
        ]
        retracting = [ch for ch in changes if ch.old is not None]
        proposals: dict[tuple[UUID, str], RowMapping] = {}
        if retracting:
            wanted = [and_(p.c.case_id == ch.case_id, p.c.role == ch.role.value) for ch in retracting]
            locked = await session.execute(
                select(p)
                .where(p.c.status == "open", or_(*wanted))
                .order_by(p.c.proposal_id)
                .with_for_update(skip_locked=True)  # an answer in progress holds it: leave it be
            )
            proposals = {(x["case_id"], x["role"]): x for x in locked.mappings()}
        changes = [ch for ch in changes if ch.old is None or (ch.case_id, ch.role.value) in proposals]
        people = sorted({x for ch in changes for x in (ch.old, ch.new) if x is not None})
        volunteers: dict[UUID, dict[str, Any]] = {
            x["volunteer_id"]: dict(x)
            for x in (
                await session.execute(
                    select(*(col for col in v.c if col.name != "profile"))
                    .where(v.c.volunteer_id.in_(people))
                    .order_by(v.c.volunteer_id)
                    .with_for_update(skip_locked=True)
                )
            ).mappings()
        }
        changes = _fitting(
            [
                ch
                for ch in changes
                if (ch.old is None or ch.old in volunteers)
                and (ch.new is None or volunteers.get(ch.new, {}).get("status") == "active")
            ],
            volunteers,
        )
        placement = self._placement
        for ch in changes:
            if ch.old is not None:
                proposal = proposals[(ch.case_id, ch.role.value)]
                await placement.close_proposal(
                    session, proposal, "retracted", now, RetractionReason.REOPTIMISED
                )
        mentor_available = await self._store.mentor_available(session)
        retracted = Counter(ch.old for ch in changes if ch.old is not None)
        load = {vid: x["active_cases"] + x["reserved"] - retracted[vid] for vid, x in volunteers.items()}
        unplaced: list[UUID] = []
        for ch in changes:
            if ch.new is None:
                unplaced.append(ch.case_id)
                continue
            case = cases[ch.case_id]
            candidate = volunteers[ch.new] | {"active_cases": load[ch.new], "reserved": 0}
            choices = placement.chooser.choose(
                case["facts"], [candidate], ch.role, limit=1, mentor_available=mentor_available
            )
            if not choices or not await self._store.reserve(session, ch.new):
                unplaced.append(ch.case_id)  # cannot happen with the rows locked; the online path decides
                continue
            load[ch.new] += 1
            attempt = await self._store.attempts(session, ch.case_id, ch.role)
            await placement.insert_proposal(session, case, ch.role, choices[0], now=now, attempt=attempt + 1)
        await self._store.queue(session, unplaced)
        return changes

    async def _store_prices(self, session: AsyncSession, prices: Mapping[UUID, float]) -> None:
        """Each volunteer's dual price from this pass replaces the last pass's (readers see either)."""
        table = self._store.t.prices
        await session.execute(delete(table))
        rows = [{"volunteer_id": vid, "price": price} for vid, price in prices.items() if price > 0]
        if rows:
            await session.execute(insert(table), rows)


def _listed(volunteer: UUID | None) -> list[UUID]:
    return [] if volunteer is None else [volunteer]


def _fitting(changes: list[Change], volunteers: Mapping[UUID, Mapping[str, Any]]) -> list[Change]:
    """The changes every volunteer's fresh room covers: a change whose new volunteer would be over
    capacity is dropped (the lowest gains first), which may take back the room its retraction freed,
    so until nothing more is dropped."""
    kept = sorted(changes, key=lambda ch: -ch.gain)
    while True:
        room = {
            vid: row["max_active_cases"] - row["active_cases"] - row["reserved"]
            for vid, row in volunteers.items()
        }
        for ch in kept:
            if ch.old is not None:
                room[ch.old] += 1
        fits: list[Change] = []
        for ch in kept:
            if ch.new is None or room[ch.new] > 0:
                if ch.new is not None:
                    room[ch.new] -= 1
                fits.append(ch)
        if len(fits) == len(kept):
            return kept
        kept = fits
