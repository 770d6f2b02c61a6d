"""Transactional outbox: events are written in the same transaction as the state change that caused them.

A relay (``relay.py``) later publishes the rows to Kafka and deletes them. Rows are spread over
``LANES`` lanes by a hash of the Kafka key; a relay holds a lane exclusively while it publishes it, so
several relays can run at once and the events of one aggregate still reach Kafka in commit order.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    func,
    insert,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_shared.contracts.envelope import KafkaRecord

LANES = 16
OUTBOX_TABLE = "outbox"
ONE_STATEMENT_ROWS = 32
"""Up to this many records are added and the relay woken in one statement."""


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        OUTBOX_TABLE,
        metadata,
        Column("id", BigInteger, Identity(always=True), primary_key=True),
        Column("lane", SmallInteger, nullable=False),
        Column("topic", Text, nullable=False),
        Column("key", LargeBinary, nullable=True),
        Column("header_keys", ARRAY(Text), nullable=False),
        Column("header_values", ARRAY(LargeBinary), nullable=False),
        Column("value", LargeBinary, nullable=True),
        Column("event_type", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_outbox_lane_id", "lane", "id"),
    )


def lane_of(key: bytes | None) -> int:
    return zlib.crc32(key or b"") % LANES


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes a schema's relay as soon as rows commit."""
    return f"lastline_outbox_{schema}"


def _text(raw: str) -> str:
    """``raw`` as PostgreSQL text takes it: it refuses U+0000, which a partner's record may carry (in
    a header name or ``ce_type``) into a dead-letter copy; failing that write would wedge the consumer."""
    return raw.replace("\x00", "\ufffd")


def _header(record: KafkaRecord, name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return _text((value or b"").decode("utf-8", "replace"))  # a Kafka header may have no value
    return None


class Outbox:
    """Where a service's handlers put the events they publish."""

    def __init__(self, table: Table, schema: str) -> None:
        self.table = table
        self.schema = schema
        self.channel = notify_channel(schema)

    async def add(self, session: AsyncSession, records: Iterable[KafkaRecord]) -> int:
        """Add records inside the caller's transaction. Returns how many were added."""
        rows = [
            {
                "lane": lane_of(record.key),
                "topic": record.topic,
                "key": record.key,
                "header_keys": [_text(k) for k, _ in record.headers],
                "header_values": [v for _, v in record.headers],
                "value": record.value,
                "event_type": _header(record, "ce_type"),
            }
            for record in records
        ]
        if not rows:
            return 0
        # The NOTIFY is delivered at commit, once per transaction: it wakes the relay without a
        # polling delay. A few rows go with it in one statement (one round trip, as most outcome
        # and decision transactions add); many go as one executemany, then the NOTIFY.
        wake = select(func.pg_notify(self.channel, ""))
        if len(rows) <= ONE_STATEMENT_ROWS:
            await session.execute(wake.add_cte(insert(self.table).values(rows).cte()))
        else:
            await session.execute(insert(self.table), rows)
            await session.execute(wake)
        return len(rows)
