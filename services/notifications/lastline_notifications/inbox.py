"""The staff inbox: items written in the transaction that decided them, listed most urgent first.

Each new item NOTIFYs the schema's inbox channel at commit, so the live stream (``inbox_api``) pushes
it at once. Escalations sort first, the 3-day level before the 7- and 14-day ones, the nearest hearing
first; everything else newest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, Select, case, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_notifications.tables import NotificationsTables
from lastline_notifications.triggers import InboxEntry


def inbox_channel(schema: str) -> str:
    return f"lastline_inbox_{schema}"


class InboxStore:
    def __init__(self, tables: NotificationsTables, schema: str) -> None:
        self.t = tables.inbox_items
        self.channel = inbox_channel(schema)

    async def add(self, session: AsyncSession, entries: Sequence[tuple[str, InboxEntry]]) -> list[int]:
        """Add ``(source key, entry)`` items; a key seen before adds nothing. Returns the new ids."""
        if not entries:
            return []
        rows = [
            {
                "kind": entry.kind,
                "source_event_id": key,
                "case_id": entry.case_id,
                "facility_code": entry.facility_code,
                "partner_id": entry.partner_id,
                "level": entry.level,
                "next_hearing_date": entry.next_hearing_date,
                "title": entry.title,
                "details": entry.details,
            }
            for key, entry in entries
        ]
        result = await session.execute(
            insert(self.t).on_conflict_do_nothing().returning(self.t.c.item_id), rows
        )
        ids = [row.item_id for row in result]
        if ids:
            await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": self.channel})
        return ids

    def query(
        self,
        *,
        facility: str | None = None,
        partner: str | None = None,
        kind: str | None = None,
        include_done: bool = False,
        after_id: int | None = None,
    ) -> Select[Any]:
        t = self.t
        stmt = select(t)
        if facility:
            stmt = stmt.where(t.c.facility_code == facility)
        if partner:
            stmt = stmt.where(t.c.partner_id == partner)
        if kind:
            stmt = stmt.where(t.c.kind == kind)
        if not include_done:
            stmt = stmt.where(t.c.done_at.is_(None))
        if after_id is not None:
            stmt = stmt.where(t.c.item_id > after_id)
        return stmt

    async def listing(
        self, session: AsyncSession, *, limit: int = 100, offset: int = 0, **filters: Any
    ) -> list[dict[str, Any]]:
        t = self.t
        urgency = case((t.c.kind == "escalation", 0), else_=1)
        stmt = (
            self.query(**filters)
            .order_by(
                urgency,
                t.c.level.asc().nulls_last(),
                t.c.next_hearing_date.asc().nulls_last(),
                t.c.created_at.desc(),
                t.c.item_id.desc(),
            )
            .limit(limit)
            .offset(offset)
        )
        return [to_json(row) for row in (await session.execute(stmt)).mappings()]

    async def since(
        self, session: AsyncSession, after_id: int, limit: int = 500, **filters: Any
    ) -> list[dict[str, Any]]:
        """Items newer than ``after_id`` in creation order (the live stream's catch-up)."""
        stmt = self.query(after_id=after_id, include_done=True, **filters).order_by(self.t.c.item_id)
        return [to_json(row) for row in (await session.execute(stmt.limit(limit))).mappings()]

    async def last_id(self, session: AsyncSession) -> int:
        return int(await session.scalar(select(func.coalesce(func.max(self.t.c.item_id), 0))) or 0)

    async def mark_done(
        self, session: AsyncSession, item_id: int, by: str, at: datetime
    ) -> dict[str, Any] | None:
        t = self.t
        row = (
            (
                await session.execute(
                    update(t)
                    .where(t.c.item_id == item_id)
                    .values(done_at=func.coalesce(t.c.done_at, at), done_by=func.coalesce(t.c.done_by, by))
                    .returning(*t.c)
                )
            )
            .mappings()
            .first()
        )
        return to_json(row) if row is not None else None


def to_json(row: Mapping[str, Any] | RowMapping) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or isinstance(value, str | int | float | bool | dict | list):
            out[key] = value
        else:
            out[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return out
