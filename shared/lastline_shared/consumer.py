"""Applying consumed events exactly once in effect: inbox, per-event savepoints, bounded retries, DLQ.

A batch of Kafka records is applied in one database transaction. Each record is decoded (a record that
does not decode is an error value, never an exception), claimed in the inbox (redeliveries are skipped),
and handed to the service's handler inside a savepoint, so one failing event rolls back alone. A failing
event is retried with backoff, then dead-lettered: a copy of the original record with the error in its
headers is written to the outbox for ``<topic>.dlq``, in the same transaction, so it too is published
exactly once. Only database or network trouble fails the whole batch; the caller then commits no offsets
and the batch is consumed again.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_shared.contracts.envelope import DecodeError, Envelope, KafkaRecord, decode
from lastline_shared.contracts.topics import dlq_topic
from lastline_shared.inbox import Inbox
from lastline_shared.logging import trace_id_from_traceparent
from lastline_shared.metrics import ConsumeOutcome, ServiceMetrics
from lastline_shared.outbox import Outbox

log = structlog.get_logger(__name__)

Handler = Callable[[AsyncSession, Envelope], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, Sequence[Envelope]], Awaitable[None]]
InvalidHandler = Callable[[AsyncSession, DecodeError], Awaitable[None]]

# Errors that say the database or network is away, not that the event is bad: never dead-letter on these.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    ConnectionError,
    OSError,
)


# SQLSTATEs of a transaction that lost a race (serialization failure, deadlock, lock timeout): the
# same work succeeds when retried, so the whole batch is redone rather than any event dead-lettered.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` says "try the batch again later" rather than "this event is bad"."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        for cause in (error.orig, getattr(error.orig, "__cause__", None)):
            code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
            if code in RETRYABLE_SQLSTATES:
                return True
    return False


class _RetryCarefully(Exception):
    """A handler failed on the fast path: the batch is rolled back and redone event by event."""


class PermanentError(Exception):
    """Raised by a handler for an event that can never succeed: dead-lettered without retries."""


class Record(Protocol):
    """The parts of a consumed Kafka record we use (aiokafka's ConsumerRecord has them)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


_OUTCOME_FIELDS: dict[ConsumeOutcome, str] = {
    "processed": "processed",
    "duplicate": "duplicates",
    "invalid": "invalid",
    "dlq": "dead_lettered",
}


@dataclass
class BatchOutcome:
    processed: int = 0
    duplicates: int = 0
    invalid: int = 0
    dead_lettered: int = 0


def identity(record: Record, item: Envelope | DecodeError) -> tuple[str, str]:
    """The inbox identity: CloudEvents (source, id), or the record's position if it did not decode."""
    if isinstance(item, Envelope):
        return item.source, item.id
    return f"kafka:{record.topic}/{record.partition}", str(record.offset)


def dead_letter(record: Record, error: BaseException | str, consumer: str) -> KafkaRecord:
    """The original record, headers and all, plus why it failed."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    extra = [
        ("dlq_error", message[:2000].encode()),
        ("dlq_consumer", consumer.encode()),
        ("dlq_original_topic", record.topic.encode()),
        ("dlq_original_partition", str(record.partition).encode()),
        ("dlq_original_offset", str(record.offset).encode()),
    ]
    return KafkaRecord(
        topic=dlq_topic(record.topic),
        key=record.key,
        headers=(*tuple(record.headers), *extra),
        value=record.value or b"",
    )


class EventProcessor:
    """Applies batches of records for one consumer (one consumer group of one service)."""

    def __init__(
        self,
        *,
        consumer: str,
        service: str,
        session_factory: async_sessionmaker[AsyncSession],
        inbox: Inbox,
        outbox: Outbox,
        handle: Handler | None = None,
        handle_batch: BatchHandler | None = None,
        on_invalid: InvalidHandler | None = None,
        max_retries: int = 3,
        retry_backoff_s: float = 0.2,
        retry_budget_s: float = 10.0,
    ) -> None:
        self.consumer = consumer
        self._metrics = ServiceMetrics(service)
        self._session_factory = session_factory
        self._inbox = inbox
        self._outbox = outbox
        if handle is not None and handle_batch is None:
            handle_batch = _one_by_one(handle)
        elif handle_batch is None or handle is not None:
            raise TypeError("pass exactly one of handle= (per event) or handle_batch= (bulk writes)")
        self._handle_batch = handle_batch
        self._on_invalid = on_invalid
        self._max_retries = max_retries
        self._retry_backoff_s = retry_backoff_s
        # Retries sleep inside the batch; the budget keeps a batch of poison well inside
        # Kafka's max.poll.interval so the consumer is never evicted from its group.
        self._retry_budget_s = retry_budget_s

    async def process(self, records: Sequence[Record]) -> BatchOutcome:
        outcome = BatchOutcome()
        if not records:
            return outcome
        items = [(r, decode(r.topic, r.key, list(r.headers), r.value)) for r in records]
        identities = [identity(r, item) for r, item in items]
        deadline = time.monotonic() + self._retry_budget_s
        try:
            # Fast path: the whole batch in one transaction without savepoints.
            return await self._process(items, identities, deadline, careful=False)
        except _RetryCarefully:
            # Some handler failed: redo the batch with a savepoint per event, so the failure is
            # retried and, if it persists, dead-lettered alone.
            return await self._process(items, identities, deadline, careful=True)

    async def _process(
        self,
        items: list[tuple[Record, Envelope | DecodeError]],
        identities: list[tuple[str, str]],
        deadline: float,
        *,
        careful: bool,
    ) -> BatchOutcome:
        outcome = BatchOutcome()
        counts: list[tuple[str, str, ConsumeOutcome]] = []
        fast: list[tuple[Record, Envelope]] = []
        async with self._session_factory() as session, session.begin():
            fresh = await self._inbox.claim(
                session, [(s, e, r.topic) for (s, e), (r, _) in zip(identities, items, strict=True)]
            )
            for ident, (record, item) in zip(identities, items, strict=True):
                event_type = item.type if isinstance(item, Envelope) else "invalid"
                if ident not in fresh:
                    result: ConsumeOutcome = "duplicate"
                else:
                    fresh.discard(ident)  # a second copy within this batch is a duplicate too
                    if careful or isinstance(item, DecodeError):
                        result = await self._apply(session, record, item, deadline)
                    else:
                        fast.append((record, item))
                        continue
                counts.append((record.topic, event_type, result))
            if fast:
                await self._apply_fast(session, fast)
                counts += [(record.topic, item.type, "processed") for record, item in fast]
        # Counted only once the transaction committed: a rolled-back attempt counts nothing.
        for topic, event_type, result in counts:
            field = _OUTCOME_FIELDS[result]
            setattr(outcome, field, getattr(outcome, field) + 1)
            self._metrics.event_consumed(topic, event_type, result)
        return outcome

    async def _apply_fast(self, session: AsyncSession, batch: list[tuple[Record, Envelope]]) -> None:
        """All new events of the batch in one handler call, without savepoints."""
        started = time.perf_counter()
        try:
            await self._handle_batch(session, [item for _, item in batch])
        except Exception as error:
            if is_transient(error):
                raise
            raise _RetryCarefully from error
        per_event = (time.perf_counter() - started) / len(batch)
        for record, item in batch:
            self._metrics.observe_handler(record.topic, item.type, per_event)

    async def _apply(
        self, session: AsyncSession, record: Record, item: Envelope | DecodeError, deadline: float
    ) -> ConsumeOutcome:
        """Apply one event; returns what became of it."""
        context = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "event_id": item.id if isinstance(item, Envelope) else None,
            "trace_id": trace_id_from_traceparent(item.traceparent) if isinstance(item, Envelope) else None,
        }
        with structlog.contextvars.bound_contextvars(**context):
            if isinstance(item, DecodeError):
                return await self._apply_invalid(session, record, item)
            last_error: BaseException | None = None
            for attempt in range(self._max_retries + 1):
                started = time.perf_counter()
                try:
                    async with session.begin_nested():
                        await self._handle_batch(session, [item])
                    self._metrics.observe_handler(record.topic, item.type, time.perf_counter() - started)
                    return "processed"
                except PermanentError as error:
                    last_error = error
                    break
                except Exception as error:
                    if is_transient(error):
                        raise
                    last_error = error
                    log.warning(
                        "event handler failed",
                        attempt=attempt + 1,
                        error=repr(error),
                        event_type=item.type,
                    )
                    delay = self._retry_backoff_s * 2**attempt
                    if attempt == self._max_retries or time.monotonic() + delay > deadline:
                        break
                    await asyncio.sleep(delay)
            assert last_error is not None
            log.error(
                "event dead-lettered",
                event_type=item.type,
                error=repr(last_error),
                traceback="".join(traceback.format_exception(last_error)[-3:]),
            )
            await self._outbox.add(session, [dead_letter(record, last_error, self.consumer)])
            return "dlq"

    async def _apply_invalid(
        self, session: AsyncSession, record: Record, error: DecodeError
    ) -> ConsumeOutcome:
        codes = ",".join(sorted({reason.code for reason in error.reasons}))
        if self._on_invalid is not None:
            try:
                async with session.begin_nested():
                    await self._on_invalid(session, error)
                log.info("invalid event handled", reasons=codes)
                return "invalid"
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.error("invalid-event handler failed", error=repr(exc))
        # No handler (internal topics) or the handler failed: keep it for review on the DLQ.
        log.warning("invalid event dead-lettered", reasons=codes)
        await self._outbox.add(session, [dead_letter(record, f"invalid: {codes}", self.consumer)])
        return "dlq"


def _one_by_one(handle: Handler) -> BatchHandler:
    async def handle_batch(session: AsyncSession, envelopes: Sequence[Envelope]) -> None:
        for envelope in envelopes:
            await handle(session, envelope)

    return handle_batch
