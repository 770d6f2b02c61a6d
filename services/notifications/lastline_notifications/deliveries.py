"""Deliveries: decided once in the consumer's transaction, then sent by the senders (``senders.py``).

A row's life: ``pending`` -> (claimed) ``sending`` -> ``sent`` | ``pending`` again (retry after a
backoff) | ``failed`` (permanent error or too many attempts). The claim is committed before the send
and the outcome after it, so a process that dies between the two leaves the row ``sending``; once its
claim lapses (``delivery_lease_s``) another sender sends it again. That is the one window in which a
message goes out twice: at most the message each sender had in flight when the process died.

Staff inbox items need no sending: the row is ``sent`` and the item written in the same transaction.
Every final outcome publishes ``notification-sent`` or ``notification-failed`` through the outbox, in
the transaction that records it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import bindparam, func, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_notifications.inbox import InboxStore
from lastline_notifications.tables import NotificationsTables
from lastline_notifications.triggers import InboxEntry, Planned, Trigger
from lastline_shared.contracts.base import Event
from lastline_shared.contracts.enums import DeliveryFailure, NotificationChannel, RecipientKind
from lastline_shared.contracts.notifications import NotificationFailed, NotificationSent

Emit = Callable[[AsyncSession, Iterable[Event]], Awaitable[int]]


def deliveries_channel(schema: str) -> str:
    """The NOTIFY channel that wakes the senders when deliveries commit."""
    return f"lastline_deliveries_{schema}"


@dataclass(frozen=True)
class RetryPolicy:
    base_s: float = 10.0
    max_s: float = 3600.0
    max_attempts: dict[str, int] = field(default_factory=lambda: {"email": 6, "webhook": 8})
    # How long a delivery waits, without using up attempts, for a recipient or case that has not
    # reached the projections yet (topics are consumed independently; a lagging consumer catches up).
    hold_s: float = 86_400.0

    def delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half the step fixed, half random, so retries of
        many deliveries that failed together spread out instead of arriving together."""
        step = min(self.max_s, self.base_s * 2.0 ** (attempt - 1))
        return step / 2 + random.uniform(0, step / 2)  # noqa: S311  (jitter, not a secret)

    def hold_delay(self, waited_s: float) -> float:
        """The next look at a held delivery: soon at first, then about a quarter of the wait so far."""
        return min(self.max_s, max(1.0, waited_s / 4))

    def attempts_for(self, channel: str) -> int:
        return self.max_attempts.get(channel, 5)


@dataclass(frozen=True)
class Claimed:
    notification_id: UUID
    claim_token: UUID
    source_event_id: str
    event_type: str
    channel: str
    destination: str
    recipient_kind: str
    recipient_id: str
    template: str
    case_id: UUID | None
    context: dict[str, Any]
    attempts: int
    created_at: datetime | None = None

    @property
    def attempt(self) -> int:
        """The number of the attempt in progress (1 for the first)."""
        return self.attempts + 1


class DeliveryError(Exception):
    """A send that did not succeed; ``permanent`` when retrying cannot help, ``not_ready`` when what
    it needs (a volunteer's contact, the case) has not arrived yet: held without using an attempt."""

    def __init__(
        self, failure: DeliveryFailure, detail: str, *, permanent: bool = False, not_ready: bool = False
    ) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail[:200] or failure.value
        self.permanent = permanent
        self.not_ready = not_ready


def _caused_by(event_id: str) -> UUID | None:
    try:
        return UUID(event_id)
    except ValueError:
        return None


class DeliveryStore:
    def __init__(
        self,
        tables: NotificationsTables,
        inbox: InboxStore,
        emit: Emit,
        *,
        schema: str,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.t = tables.deliveries
        self.inbox = inbox
        self.emit = emit
        self.policy = policy or RetryPolicy()
        self.channel = deliveries_channel(schema)
        c = self.t.c
        self._insert = (
            insert(self.t)
            .on_conflict_do_nothing()
            .returning(c.notification_id, c.channel, c.recipient_kind, c.recipient_id, c.template, c.case_id)
        )

    # -- deciding -------------------------------------------------------------------------------

    async def record(self, session: AsyncSession, decided: Sequence[tuple[Trigger, Planned]]) -> int:
        """Insert the decided deliveries; those decided before (a redelivered event) are skipped.

        Staff inbox items are written, and their outcome published, here. Returns how many are new.
        """
        if not decided:
            return 0
        now = datetime.now(UTC)
        rows: list[dict[str, Any]] = []
        entries: dict[UUID, tuple[Trigger, InboxEntry]] = {}
        for trigger, planned in decided:
            notification_id = uuid.uuid4()
            immediate = planned.channel == NotificationChannel.STAFF_INBOX
            if planned.inbox is not None:
                entries[notification_id] = (trigger, planned.inbox)
            rows.append(
                {
                    "notification_id": notification_id,
                    "source_event_id": trigger.event_id,
                    "event_type": trigger.event_type,
                    "channel": planned.channel.value,
                    "destination": planned.destination,
                    "recipient_kind": planned.recipient_kind.value,
                    "recipient_id": planned.recipient_id,
                    "template": planned.template,
                    "case_id": planned.case_id,
                    "context": planned.context,
                    "status": "sent" if immediate else "pending",
                    "attempts": 1 if immediate else 0,
                    "next_attempt_at": now,
                    "finished_at": now if immediate else None,
                }
            )
        fresh = (await session.execute(self._insert, rows)).all()
        sent: list[Event] = []
        items: list[tuple[str, InboxEntry]] = []
        to_send = 0
        for row in fresh:
            if row.notification_id in entries:
                trigger, entry = entries[row.notification_id]
                items.append((trigger.event_id, entry))
                sent.append(
                    NotificationSent(
                        notification_id=row.notification_id,
                        channel=NotificationChannel(row.channel),
                        template=row.template,
                        recipient_kind=RecipientKind(row.recipient_kind),
                        recipient_id=row.recipient_id,
                        case_id=row.case_id,
                        caused_by=_caused_by(trigger.event_id),
                    )
                )
            else:
                to_send += 1
        await self.inbox.add(session, items)
        await self.emit(session, sent)
        if to_send:
            await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": self.channel})
        return len(fresh)

    # -- sending --------------------------------------------------------------------------------

    async def claim(
        self, session: AsyncSession, destination: str, *, limit: int, lease_s: float
    ) -> list[Claimed]:
        """Take up to ``limit`` due rows of one destination (``SKIP LOCKED``: senders never share a
        row) and mark them ``sending`` until the lease lapses. Commit before sending."""
        t = self.t
        token = uuid.uuid4()
        due = (
            select(t.c.notification_id)
            .where(
                t.c.destination == destination,
                t.c.status.in_(("pending", "sending")),
                t.c.next_attempt_at <= func.now(),
            )
            .order_by(t.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rows = (
            await session.execute(
                update(t)
                .where(t.c.notification_id.in_(due.scalar_subquery()))
                .values(
                    status="sending",
                    claim_token=token,
                    next_attempt_at=func.now() + timedelta(seconds=lease_s),
                )
                .returning(
                    t.c.notification_id,
                    t.c.claim_token,
                    t.c.source_event_id,
                    t.c.event_type,
                    t.c.channel,
                    t.c.destination,
                    t.c.recipient_kind,
                    t.c.recipient_id,
                    t.c.template,
                    t.c.case_id,
                    t.c.context,
                    t.c.attempts,
                    t.c.created_at,
                )
            )
        ).all()
        return [Claimed(*row) for row in rows]

    async def due_destinations(self, session: AsyncSession, channel: str, limit: int = 1000) -> list[str]:
        t = self.t
        rows = await session.execute(
            select(t.c.destination)
            .where(
                t.c.channel == channel,
                t.c.status.in_(("pending", "sending")),
                t.c.next_attempt_at <= func.now(),
            )
            .group_by(t.c.destination)
            .limit(limit)
        )
        return [row.destination for row in rows]

    def _mine(self, claimed: Claimed) -> Any:
        t = self.t
        return (t.c.notification_id == claimed.notification_id) & (t.c.claim_token == claimed.claim_token)

    async def mark_sent(self, session: AsyncSession, claimed: Claimed, at: datetime) -> bool:
        """Record a successful send; False if the claim lapsed and another sender took the row."""
        result = await session.execute(
            update(self.t)
            .where(self._mine(claimed))
            .values(
                status="sent",
                attempts=claimed.attempt,
                finished_at=at,
                claim_token=None,
                failure=None,
                last_error=None,
            )
        )
        if not _changed(result):
            return False
        await self.emit(session, [NotificationSent(**self._outcome(claimed))])
        return True

    async def mark_failed(
        self, session: AsyncSession, claimed: Claimed, error: DeliveryError, at: datetime
    ) -> datetime | None:
        """Record a failed attempt. Returns when it is retried, or None when it failed for good."""
        waited_s = (at - claimed.created_at).total_seconds() if claimed.created_at else 0.0
        if error.not_ready and waited_s < self.policy.hold_s:
            held_until = at + timedelta(seconds=self.policy.hold_delay(waited_s))
            await session.execute(
                update(self.t)
                .where(self._mine(claimed))
                .values(
                    status="pending",
                    next_attempt_at=held_until,
                    claim_token=None,
                    failure=error.failure.value,
                    last_error=error.detail,
                )
            )
            return held_until
        final = error.permanent or claimed.attempt >= self.policy.attempts_for(claimed.channel)
        retry_at = None if final else at + timedelta(seconds=self.policy.delay(claimed.attempt))
        result = await session.execute(
            update(self.t)
            .where(self._mine(claimed))
            .values(
                status="failed" if final else "pending",
                attempts=claimed.attempt,
                next_attempt_at=retry_at or at,
                finished_at=at if final else None,
                claim_token=None,
                failure=error.failure.value,
                last_error=error.detail,
            )
        )
        if not _changed(result) or not final:
            return retry_at
        await self.emit(
            session,
            [
                NotificationFailed(
                    **self._outcome(claimed), failure=error.failure, detail=error.detail, will_retry=False
                )
            ],
        )
        await self.inbox.add(
            session,
            [
                (
                    f"{claimed.notification_id}:{claimed.attempt}",
                    InboxEntry(
                        "delivery_failed",
                        f"{claimed.channel.capitalize()} {claimed.template} to {claimed.recipient_kind} "
                        f"failed after {claimed.attempt} attempt(s): {error.detail}",
                        {
                            "notification_id": str(claimed.notification_id),
                            "channel": claimed.channel,
                            "template": claimed.template,
                            "recipient_kind": claimed.recipient_kind,
                            "recipient_id": claimed.recipient_id,
                            "failure": error.failure.value,
                            "detail": error.detail,
                            "attempts": claimed.attempt,
                        },
                        case_id=claimed.case_id,
                        partner_id=claimed.recipient_id if claimed.recipient_kind == "partner" else None,
                    ),
                )
            ],
        )
        return None

    async def release(self, session: AsyncSession, claimed: Sequence[Claimed], until: datetime) -> None:
        """Give claimed rows back unsent (no attempt counted), due again at ``until``."""
        if not claimed:
            return
        t = self.t
        await session.execute(
            update(t)
            .where(
                tuple_(t.c.notification_id, t.c.claim_token).in_(
                    [(c.notification_id, c.claim_token) for c in claimed]
                )
            )
            .values(status="pending", claim_token=None, next_attempt_at=until)
        )

    def _outcome(self, claimed: Claimed) -> dict[str, Any]:
        return {
            "notification_id": claimed.notification_id,
            "channel": NotificationChannel(claimed.channel),
            "template": claimed.template,
            "recipient_kind": RecipientKind(claimed.recipient_kind),
            "recipient_id": claimed.recipient_id,
            "case_id": claimed.case_id,
            "caused_by": _caused_by(claimed.source_event_id),
            "attempt": claimed.attempt,
        }

    # -- staff ----------------------------------------------------------------------------------

    async def replay(self, session: AsyncSession, notification_id: UUID) -> bool:
        """Send a finished email or webhook delivery again, from a fresh attempt count."""
        t = self.t
        result = await session.execute(
            update(t)
            .where(
                t.c.notification_id == notification_id,
                t.c.status.in_(("failed", "sent")),
                t.c.channel != NotificationChannel.STAFF_INBOX.value,
            )
            .values(
                status="pending",
                attempts=0,
                next_attempt_at=func.now(),
                finished_at=None,
                failure=None,
                last_error=None,
            )
        )
        if not _changed(result):
            return False
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": self.channel})
        return True

    async def find(self, session: AsyncSession, notification_id: UUID) -> dict[str, Any] | None:
        row = (
            (await session.execute(select(self.t).where(self.t.c.notification_id == notification_id)))
            .mappings()
            .first()
        )
        return dict(row) if row is not None else None

    async def listing(
        self,
        session: AsyncSession,
        *,
        status: str | None = None,
        channel: str | None = None,
        partner: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        t = self.t
        stmt = select(t).order_by(t.c.created_at.desc()).limit(limit)
        if status:
            stmt = stmt.where(t.c.status == status)
        if channel:
            stmt = stmt.where(t.c.channel == channel)
        if partner:
            stmt = stmt.where(t.c.recipient_kind == "partner", t.c.recipient_id == partner)
        return [dict(row) for row in (await session.execute(stmt)).mappings()]

    async def statuses(self, session: AsyncSession, ids: Sequence[UUID]) -> dict[UUID, str]:
        t = self.t
        rows = await session.execute(
            select(t.c.notification_id, t.c.status).where(
                t.c.notification_id.in_(bindparam("ids", expanding=True))
            ),
            {"ids": list(ids)},
        )
        return {row.notification_id: row.status for row in rows}


def _changed(result: Any) -> bool:
    return bool(getattr(result, "rowcount", 0))
