"""The loops that send what the consumers decided, one queue per destination.

- Email: ``email_senders`` loops, each with its own SMTP connection, claim from the ``smtp`` queue.
- Webhooks: a dispatcher starts one drain task per endpoint with due deliveries (at most
  ``webhook_max_endpoints`` at once), so a slow or dead endpoint holds up only its own queue. When an
  endpoint fails, the rest of its claimed batch waits for the same retry time instead of timing out
  one by one.

Each batch: claim, and read what the whole batch needs (contacts and cases, or the endpoint), in one
transaction; then per message build, send, record (commit). A process killed after a send and before
its record leaves the row ``sending``; when the claim lapses it is sent again: at most one duplicate
per sender, the documented window (``deliveries.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lastline_notifications.deliveries import Claimed, DeliveryError, DeliveryStore
from lastline_notifications.mail import Mailer
from lastline_notifications.messages import EmailBuilder
from lastline_notifications.subscriptions import SubscriptionStore
from lastline_notifications.triggers import SMTP_DESTINATION
from lastline_notifications.webhooks import WebhookSender
from lastline_shared.contracts.enums import DeliveryFailure
from lastline_shared.wakeup import Wakeup

log = structlog.get_logger(__name__)

SendOne = Callable[[Claimed], Awaitable[None]]
Send = Callable[[AsyncSession, Sequence[Claimed]], Awaitable[SendOne]]
"""Given a claimed batch, reads what its messages need (in the claim's transaction: one read per
batch, not per message) and returns what sends one of them (no transaction open meanwhile)."""

# Failures that say the destination is unwell, not that one message is bad.
_DESTINATION_DOWN = frozenset(
    {DeliveryFailure.TIMEOUT, DeliveryFailure.CONNECTION_ERROR, DeliveryFailure.HTTP_ERROR}
)


class Senders:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        store: DeliveryStore,
        *,
        emails: EmailBuilder,
        mailer_factory: Callable[[], Mailer],
        webhooks: WebhookSender,
        subscriptions: SubscriptionStore,
        wakeup: Wakeup,
        lease_s: float = 120.0,
        email_batch: int = 20,
        webhook_batch: int = 10,
        max_endpoints: int = 32,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.emails = emails
        self.mailer_factory = mailer_factory
        self.webhooks = webhooks
        self.subscriptions = subscriptions
        self.wakeup = wakeup
        self.lease_s = lease_s
        self.email_batch = email_batch
        self.webhook_batch = webhook_batch
        self.max_endpoints = max_endpoints
        # Fault-injection seam for the crash tests: runs after a send, before its outcome is recorded.
        self.after_send: Callable[[Claimed], None] | None = None

    # -- one batch ------------------------------------------------------------------------------

    async def run_batch(self, destination: str, limit: int, send: Send) -> int:
        """Claim up to ``limit`` due deliveries of ``destination`` and send them. Returns how many
        were claimed (0: nothing due)."""
        async with self._batch_sessions(destination) as sessions:
            return await self._run_batch(sessions, destination, limit, send)

    @asynccontextmanager
    async def _batch_sessions(self, destination: str) -> AsyncIterator[Callable[[], AsyncSession]]:
        """Where a batch's transactions run. An email sender keeps one connection for its batch (a
        transaction per outcome still): a checkout from the pool costs a ping, three round trips, per
        message otherwise. Email senders are few (``email_senders``); webhook drains are many and wait
        on partners' endpoints, so they check out per transaction and never hold the pool."""
        engine = self.sessions.kw.get("bind")
        if destination != SMTP_DESTINATION or not isinstance(engine, AsyncEngine):
            yield self.sessions
            return
        async with engine.connect() as connection:
            yield partial(self.sessions, bind=connection)

    async def _run_batch(
        self, sessions: Callable[[], AsyncSession], destination: str, limit: int, send: Send
    ) -> int:
        async with sessions() as session, session.begin():
            claimed = await self.store.claim(session, destination, limit=limit, lease_s=self.lease_s)
            if not claimed:
                return 0
            send_one = await send(session, claimed)
        started = time.monotonic()
        for i, delivery in enumerate(claimed):
            if time.monotonic() - started > self.lease_s / 2:
                # The rest could outlive their claim and be taken by another sender: give them back.
                await self._release(sessions, claimed[i:], datetime.now(UTC))
                break
            try:
                await send_one(delivery)
            except DeliveryError as error:
                retry_at = await self._failed(sessions, delivery, error)
                log.info(
                    "delivery attempt failed",
                    notification_id=str(delivery.notification_id),
                    template=delivery.template,
                    channel=delivery.channel,
                    attempt=delivery.attempt,
                    failure=error.failure.value,
                    detail=error.detail,
                    retry_at=retry_at.isoformat() if retry_at else None,
                )
                if error.failure in _DESTINATION_DOWN and not error.permanent:
                    until = retry_at or datetime.now(UTC) + timedelta(seconds=self.store.policy.base_s)
                    await self._release(sessions, claimed[i + 1 :], until)
                    break
                continue
            if self.after_send is not None:
                self.after_send(delivery)
            # One commit per message: a crash resends at most the message in flight (the window).
            async with sessions() as session, session.begin():
                await self.store.mark_sent(session, delivery, datetime.now(UTC))
        return len(claimed)

    async def _failed(
        self, sessions: Callable[[], AsyncSession], delivery: Claimed, error: DeliveryError
    ) -> datetime | None:
        async with sessions() as session, session.begin():
            return await self.store.mark_failed(session, delivery, error, datetime.now(UTC))

    async def _release(
        self, sessions: Callable[[], AsyncSession], rest: list[Claimed], until: datetime
    ) -> None:
        if rest:
            async with sessions() as session, session.begin():
                await self.store.release(session, rest, until)

    # -- sending one ----------------------------------------------------------------------------

    def email_sender(self, mailer: Mailer) -> Send:
        async def prepare(session: AsyncSession, claimed: Sequence[Claimed]) -> SendOne:
            known = await self.emails.load(session, claimed)

            async def send(delivery: Claimed) -> None:
                await mailer.send(self.emails.message(known, delivery))

            return send

        return prepare

    async def send_webhook(self, session: AsyncSession, claimed: Sequence[Claimed]) -> SendOne:
        """A batch is one destination, so its endpoint (URL, secret, still active?) is read once."""
        endpoints = {
            destination: await self.subscriptions.endpoint(
                session, UUID(destination.removeprefix("webhook:"))
            )
            for destination in {delivery.destination for delivery in claimed}
        }

        async def send(delivery: Claimed) -> None:
            endpoint = endpoints[delivery.destination]
            if endpoint is None or not endpoint.active:
                raise DeliveryError(DeliveryFailure.OTHER, "subscription disabled", permanent=True)
            await self.webhooks.send(
                endpoint.url, endpoint.secret, str(delivery.notification_id), delivery.context["payload"]
            )

        return send

    # -- loops ----------------------------------------------------------------------------------

    async def email_loop(self) -> None:
        mailer = self.mailer_factory()
        send = self.email_sender(mailer)
        failures = 0
        try:
            while True:
                try:
                    claimed = await self.run_batch(SMTP_DESTINATION, self.email_batch, send)
                    failures = 0
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # the database away: claimed rows lapse and are retried
                    failures += 1
                    log.warning("email sender failed", error=repr(error))
                    await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                    continue
                if claimed == 0:
                    await self.wakeup.wait()
        finally:
            await mailer.close()

    async def webhook_dispatcher(self) -> None:
        active: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                try:
                    async with self.sessions() as session:
                        due = await self.store.due_destinations(session, "webhook")
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    log.warning("webhook dispatcher failed", error=repr(error))
                    due = []
                for destination in due:
                    if destination in active or len(active) >= self.max_endpoints:
                        continue
                    task = asyncio.create_task(self._drain(destination), name=f"webhook {destination}")
                    active[destination] = task
                    task.add_done_callback(_forget(active, destination))
                await self.wakeup.wait()
        finally:
            for task in list(active.values()):
                task.cancel()
            await asyncio.gather(*active.values(), return_exceptions=True)

    async def _drain(self, destination: str) -> None:
        """Send one endpoint's due deliveries until none are due (or it is failing)."""
        try:
            while await self.run_batch(destination, self.webhook_batch, self.send_webhook):
                pass
        except Exception as error:  # claimed rows lapse and are retried; the dispatcher restarts us
            log.warning("webhook sender failed", destination=destination, error=repr(error))

    def tasks(self, email_senders: int) -> list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]]:
        """The loops to register with the runtime."""
        return [
            ("deliveries-listener", self.wakeup.listen),
            *((f"email-{n}", self.email_loop) for n in range(email_senders)),
            ("webhooks", self.webhook_dispatcher),
        ]


def _forget(active: dict[str, asyncio.Task[None]], destination: str) -> Callable[[asyncio.Task[None]], None]:
    def done(_task: asyncio.Task[None]) -> None:
        active.pop(destination, None)

    return done
