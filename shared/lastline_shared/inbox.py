"""Inbox: which events a consumer has already applied, recorded in the same transaction as the effect.

A redelivered event finds its row and is skipped, so at-least-once delivery from Kafka becomes
exactly-once in effect. An event is identified by its CloudEvents ``source`` and ``id`` (unique together
per the spec); a record that could not be decoded is identified by its topic, partition and offset.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Column, DateTime, MetaData, PrimaryKeyConstraint, Table, Text, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

INBOX_TABLE = "inbox"


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        INBOX_TABLE,
        metadata,
        Column("consumer", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("event_id", Text, nullable=False),
        Column("topic", Text, nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        PrimaryKeyConstraint("consumer", "source", "event_id"),
    )


class Inbox:
    def __init__(self, table: Table, consumer: str) -> None:
        self.table = table
        self.consumer = consumer
        self._claim = insert(table).on_conflict_do_nothing().returning(table.c.source, table.c.event_id)

    async def claim(
        self, session: AsyncSession, identities: Sequence[tuple[str, str, str]]
    ) -> set[tuple[str, str]]:
        """Record (source, event_id, topic) identities; return those not seen before.

        Runs inside the caller's transaction: if the effect rolls back, so does the claim.
        """
        if not identities:
            return set()
        unique = {(source, event_id): topic for source, event_id, topic in identities}
        rows = [
            {"consumer": self.consumer, "source": s, "event_id": e, "topic": t}
            for (s, e), t in unique.items()
        ]
        # One statement compiled once and cached; SQLAlchemy batches the rows ("insertmanyvalues").
        result = await session.execute(self._claim, rows)
        return {(row.source, row.event_id) for row in result}
