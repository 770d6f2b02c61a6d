"""Notifications' inputs: three consumers, each applying a batch in one transaction.

- ``people``: ``volunteers`` and ``cases`` keep the projections (and tell a volunteer who withdrew,
  and partners whose case closed); a case that arrives releases the ``matches`` events held for it.
- ``matches``: placements projection, and what each proposal, placement and escalation triggers. An
  event whose case is not known yet (topics are consumed independently) is held until it is.
- ``rejections``: every partner's rejections topic, by pattern, so a new partner needs no redeploy.

Deliveries are decided here, once: the inbox and the delivery's unique key make a redelivered event
a no-op. They are sent later by the senders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from lastline_notifications.deliveries import DeliveryStore
from lastline_notifications.projections import CaseSummary, Projections
from lastline_notifications.subscriptions import SubscriptionStore
from lastline_notifications.triggers import Planned, Subscriptions, Trigger, plan
from lastline_shared.contracts.cases import CaseClosed
from lastline_shared.contracts.catalog import INTERNAL_BY_TYPE
from lastline_shared.contracts.envelope import Envelope
from lastline_shared.contracts.topics import CASES, MATCHES, REJECTIONS_PATTERN, VOLUNTEERS
from lastline_shared.runtime import ServiceRuntime


def trigger_of(envelope: Envelope) -> Trigger:
    return Trigger(envelope.id, envelope.type, envelope.time, envelope.data)


class Handlers:
    def __init__(
        self,
        projections: Projections,
        deliveries: DeliveryStore,
        subscriptions: SubscriptionStore,
        *,
        oncall_emails: Sequence[str] = (),
    ) -> None:
        self.projections = projections
        self.deliveries = deliveries
        self.subscriptions = subscriptions
        self.oncall_emails = tuple(oncall_emails)

    async def on_people(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        p = self.projections
        case_ids = [_case_id(e.data) for e in envelopes if e.topic == CASES.name]
        await p.lock_cases(session, case_ids)
        decided: list[tuple[Trigger, Planned]] = []
        closed: list[Trigger] = []
        # The two projections are separate tables: each takes its events in order, in bulk.
        await p.on_volunteers(session, [(e.data, e.time) for e in envelopes if e.topic == VOLUNTEERS.name])
        await p.on_cases(session, [(e.data, e.time) for e in envelopes if e.topic == CASES.name])
        for envelope in envelopes:
            trigger = trigger_of(envelope)
            if envelope.topic == VOLUNTEERS.name:
                decided += [(trigger, planned) for planned in plan(trigger, None, _NO_SUBSCRIPTIONS)]
            elif envelope.topic == CASES.name and isinstance(envelope.data, CaseClosed):
                closed.append(trigger)
        if closed:
            cases = await p.cases(session, [_case_id(t.data) for t in closed])
            subscriptions = await self.subscriptions.index(session)
            for trigger in closed:
                case = cases.get(_case_id(trigger.data))
                decided += [(trigger, planned) for planned in plan(trigger, case, subscriptions)]
        released = await p.release(session, case_ids)
        if released:
            triggers = [_held_trigger(row) for row in released]
            decided += await self._apply_matches(session, triggers, await p.cases(session, case_ids))
        await self.deliveries.record(session, decided)

    async def on_matches(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        p = self.projections
        case_ids = {_case_id(e.data) for e in envelopes}
        cases = await p.cases(session, case_ids)
        missing = case_ids - cases.keys()
        if missing:
            # Serialise with the ``people`` consumer: either it committed the case (seen now), or
            # it will see what we hold here when it does.
            await p.lock_cases(session, missing)
            cases.update(await p.cases(session, missing))
        ready, held = [], []
        for envelope in envelopes:
            if _case_id(envelope.data) in cases:
                ready.append(trigger_of(envelope))
            else:
                held.append(_held_row(envelope))
        await p.hold(session, held)
        await self.deliveries.record(session, await self._apply_matches(session, ready, cases))

    async def _apply_matches(
        self, session: AsyncSession, triggers: Sequence[Trigger], cases: Mapping[UUID, CaseSummary]
    ) -> list[tuple[Trigger, Planned]]:
        if not triggers:
            return []
        subscriptions = await self.subscriptions.index(session)
        await self.projections.on_matches(session, [(t.data, t.time) for t in triggers])
        decided = []
        for trigger in triggers:
            case = cases.get(_case_id(trigger.data))
            decided += [(trigger, p) for p in plan(trigger, case, subscriptions, self.oncall_emails)]
        return decided

    async def on_rejections(self, session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        subscriptions = await self.subscriptions.index(session)
        decided = []
        for envelope in envelopes:
            trigger = trigger_of(envelope)
            decided += [(trigger, planned) for planned in plan(trigger, None, subscriptions)]
        await self.deliveries.record(session, decided)


_NO_SUBSCRIPTIONS = Subscriptions()


def _case_id(data: object) -> UUID:
    """The case of an event on ``cases`` or ``matches`` (every one of them names it)."""
    case_id = getattr(data, "case_id", None)
    if not isinstance(case_id, UUID):
        raise TypeError(f"{type(data).__name__} names no case")
    return case_id


def _held_row(envelope: Envelope) -> dict[str, Any]:
    return {
        "case_id": _case_id(envelope.data),
        "event_id": envelope.id,
        "source": envelope.source,
        "event_type": envelope.type,
        "event_time": envelope.time,
        "data": envelope.data.model_dump_json(),
    }


def _held_trigger(row: Mapping[str, Any]) -> Trigger:
    data = INTERNAL_BY_TYPE[row["event_type"]].model_validate_json(row["data"])
    return Trigger(row["event_id"], row["event_type"], row["event_time"], data)


def register(runtime: ServiceRuntime, handlers: Handlers) -> None:
    runtime.consume(
        VOLUNTEERS.name,
        CASES.name,
        handle_batch=handlers.on_people,
        name="people",
        description="Volunteers' contacts and case summaries (no client PII) for the messages",
    )
    runtime.consume(
        MATCHES.name,
        handle_batch=handlers.on_matches,
        name="matches",
        description="Proposals, placements, mentors and escalations: who must hear of them",
    )
    runtime.consume(
        pattern=REJECTIONS_PATTERN,
        handle_batch=handlers.on_rejections,
        name="rejections",
        description="Partners' rejected submissions: their webhook, or the staff inbox",
    )
