"""Writing a rebuild's folded chunks with COPY instead of JSON upserts.

A table that has no rows yet (the first chunk that touches it) takes its rows straight through COPY:
a chunk is folded per key, so there is nothing to merge. Later chunks COPY into a temporary table
and merge from it with one ``INSERT ... SELECT ... ON CONFLICT`` with the same rules as the live
upsert (:meth:`readmodel.TableSpec.upsert_sql`), so the rows are the ones the live path would make.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lastline_reporting import readmodel as rm
from lastline_reporting.projections import Batch


class BulkLoader:
    def __init__(self, schema: str, generation: int) -> None:
        self.schema = schema
        self.generation = generation
        self._filled: set[str] = set()
        """Tables that got rows: from then on chunks merge into them."""

    async def write(self, conn: AsyncConnection, batch: Batch) -> None:
        """Every table's rows of ``batch``, in ``conn``'s transaction (begun: it ran a statement)."""
        raw: Any = (await conn.get_raw_connection()).driver_connection  # asyncpg's connection
        if not raw.is_in_transaction():
            raise RuntimeError("BulkLoader.write needs a transaction that has begun")
        for spec in rm.TABLES:
            rows = batch.rows[spec.name]
            if not rows:
                continue
            columns = list(spec.columns)
            records = [tuple(map(row.get, columns)) for row in rows.values()]
            if spec.name not in self._filled:
                await raw.copy_records_to_table(
                    f"g{self.generation}_{spec.name}",
                    records=records,
                    columns=columns,
                    schema_name=self.schema,
                )
                self._filled.add(spec.name)
                continue
            staging = f"staging_{spec.name}"
            like = spec.qualified(self.schema, self.generation)
            await conn.execute(text(f"CREATE TEMPORARY TABLE {staging} (LIKE {like}) ON COMMIT DROP"))
            await raw.copy_records_to_table(staging, records=records, columns=columns)
            await conn.execute(text(spec.upsert_sql(self.schema, self.generation, source=staging)))
            await conn.execute(text(f"DROP TABLE {staging}"))
