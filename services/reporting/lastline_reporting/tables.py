"""Reporting's own bookkeeping tables (migrated with Alembic); the read models are in ``readmodel``.

- ``generations``: every set of read-model tables built, with its status. Live consumers write to
  the current one; a rebuild builds the next one beside it and swaps it in.
- ``current_generation``: one row naming the current generation. Each live batch reads it ``FOR
  SHARE`` and a swap updates it, so a swap waits for the batches in flight and the next batches see
  the new generation.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)

GENERATION_STATUSES = ("building", "current", "retired", "dropped", "failed")


class ReportingTables:
    def __init__(self, metadata: MetaData) -> None:
        self.generations = Table(
            "generations",
            metadata,
            Column("generation", Integer, primary_key=True, autoincrement=False),
            Column("model_version", Integer, nullable=False),
            Column("status", Text, nullable=False),
            Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            Column("swapped_at", DateTime(timezone=True), nullable=True),
            Column("events", BigInteger, nullable=True),
            CheckConstraint(
                "status IN ({})".format(", ".join(f"'{s}'" for s in GENERATION_STATUSES)), name="status"
            ),
        )
        self.current = Table(
            "current_generation",
            metadata,
            Column("singleton", Boolean, primary_key=True, server_default=text("true")),
            Column("generation", Integer, ForeignKey("generations.generation"), nullable=False),
            CheckConstraint("singleton", name="singleton"),
        )
