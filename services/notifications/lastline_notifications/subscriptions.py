"""Partners' webhook subscriptions: which URL hears which kinds of event, signed with which secret.

The secret is stored in clear (signing needs it) and shown to the admin once, when created.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from lastline_notifications.tables import NotificationsTables
from lastline_notifications.triggers import Subscriptions
from lastline_notifications.webhooks import new_secret


@dataclass(frozen=True)
class Endpoint:
    subscription_id: UUID
    partner_id: str
    url: str
    secret: str
    active: bool


class SubscriptionStore:
    def __init__(self, tables: NotificationsTables) -> None:
        self.t = tables.webhook_subscriptions

    async def create(
        self, session: AsyncSession, *, partner_id: str, url: str, kinds: Sequence[str], by: str
    ) -> tuple[dict[str, Any], str]:
        """A new subscription and its secret (which is never shown again)."""
        secret = new_secret()
        row = (
            (
                await session.execute(
                    self.t.insert()
                    .values(
                        subscription_id=uuid.uuid4(),
                        partner_id=partner_id,
                        url=url,
                        kinds=sorted(set(kinds)),
                        secret=secret,
                        created_by=by,
                    )
                    .returning(*self._public())
                )
            )
            .mappings()
            .one()
        )
        return dict(row), secret

    def _public(self) -> list[Any]:
        return [c for c in self.t.c if c.name != "secret"]

    async def listing(self, session: AsyncSession, partner_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(*self._public()).order_by(self.t.c.created_at)
        if partner_id:
            stmt = stmt.where(self.t.c.partner_id == partner_id)
        return [dict(row) for row in (await session.execute(stmt)).mappings()]

    async def disable(self, session: AsyncSession, subscription_id: UUID, at: datetime) -> bool:
        result = await session.execute(
            update(self.t)
            .where(self.t.c.subscription_id == subscription_id, self.t.c.active)
            .values(active=False, disabled_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def endpoint(self, session: AsyncSession, subscription_id: UUID) -> Endpoint | None:
        t = self.t
        row = (
            await session.execute(
                select(t.c.subscription_id, t.c.partner_id, t.c.url, t.c.secret, t.c.active).where(
                    t.c.subscription_id == subscription_id
                )
            )
        ).first()
        return Endpoint(*row) if row is not None else None

    async def index(self, session: AsyncSession) -> Subscriptions:
        """Every active subscription, for deciding who hears of an event."""
        t = self.t
        rows = await session.execute(select(t.c.subscription_id, t.c.partner_id, t.c.kinds).where(t.c.active))
        by_partner: dict[str, list[tuple[UUID, frozenset[str]]]] = defaultdict(list)
        for row in rows:
            by_partner[row.partner_id].append((row.subscription_id, frozenset(row.kinds)))
        return Subscriptions(dict(by_partner))

    async def count(self, session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(self.t)) or 0)
