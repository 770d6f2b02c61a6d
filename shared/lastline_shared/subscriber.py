"""Wiring an EventProcessor to Kafka through FastStream, with offsets committed after the DB commit.

FastStream's default policy acks first (at-most-once). Here a batch subscriber uses NACK_ON_ERROR:
the offsets are committed only when the whole batch was applied and committed in the database; if the
database or network failed, the batch is rewound and consumed again after a pause.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage

from lastline_shared.consumer import EventProcessor

log = structlog.get_logger(__name__)

RawBatch = tuple[ConsumerRecord[Any, Any], ...]


async def _tolerant_parser(
    records: RawBatch, original: Callable[[RawBatch], Awaitable[StreamMessage[RawBatch]]]
) -> StreamMessage[RawBatch]:
    """FastStream decodes header values as UTF-8; a partner's bad header must not wedge the consumer.

    Bad means bytes that are not UTF-8, or no value at all (Kafka allows a header without one:
    FastStream's ``None.decode()`` raises AttributeError). A batch FastStream cannot parse is not
    rewound either (its fallback parser fails alike) but skipped, its offsets committed with the next
    batch: lost. The records handed to our processor stay untouched; only FastStream's view is made safe.
    """
    try:
        return await original(records)
    except (UnicodeDecodeError, AttributeError):
        safe = tuple(
            dataclasses.replace(
                r, headers=[(k, (v or b"").decode("utf-8", "replace").encode()) for k, v in r.headers]
            )
            for r in records
        )
        message = await original(safe)
        message.raw_message = records
        return message


async def _raw_decoder(message: StreamMessage[Any], _original: Any) -> Any:
    """Leave bodies as bytes: decoding is the contracts' job, and bad JSON is not FastStream's error."""
    return message.body


def subscribe(
    broker: KafkaBroker,
    processor: EventProcessor,
    *topics: str,
    group_id: str,
    pattern: str | None = None,
    max_records: int = 500,
    retry_pause_s: float = 1.0,
    description: str | None = None,
) -> Any:
    """Register ``processor`` as a batch subscriber of ``topics`` (or ``pattern``) in ``group_id``."""

    async def consume(body: Any, message: KafkaMessage) -> None:
        records: RawBatch = message.raw_message
        try:
            outcome = await processor.process(records)
        except Exception as exc:
            # The database or the network is away: pause, then let FastStream rewind the batch.
            log.warning(
                "batch failed, will be consumed again",
                consumer=processor.consumer,
                records=len(records),
                error=repr(exc),
            )
            await asyncio.sleep(retry_pause_s)
            raise
        if outcome.dead_lettered or outcome.invalid:
            log.info("batch applied", consumer=processor.consumer, **dataclasses.asdict(outcome))

    kwargs: dict[str, Any] = {
        "group_id": group_id,
        "batch": True,
        "max_records": max_records,
        "ack_policy": AckPolicy.NACK_ON_ERROR,
        "auto_offset_reset": "earliest",
        "parser": _tolerant_parser,
        "decoder": _raw_decoder,
        "description": description,
    }
    if pattern is not None:
        kwargs["pattern"] = pattern
    return broker.subscriber(*topics, **kwargs)(consume)
