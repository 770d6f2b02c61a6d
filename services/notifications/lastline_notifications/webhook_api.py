"""Webhook subscriptions (admin) and deliveries (staff: see failures, replay them) over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import AnyHttpUrl, BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_notifications.deliveries import DeliveryStore
from lastline_notifications.inbox import to_json
from lastline_notifications.subscriptions import SubscriptionStore
from lastline_shared.auth import Principal, require_role
from lastline_shared.contracts.primitives import PARTNER_ID_PATTERN
from lastline_shared.ops import ProblemError

Admin = Annotated[Principal, Depends(require_role("admin"))]
Staff = Annotated[Principal, Depends(require_role("staff"))]
WebhookKind = Literal["placed", "rejected", "escalated", "closed"]


class NewSubscription(BaseModel):
    partner_id: str = Field(pattern=PARTNER_ID_PATTERN)
    url: AnyHttpUrl
    kinds: list[WebhookKind] = Field(min_length=1, max_length=4)


def build_router(
    *,
    sessions: async_sessionmaker[AsyncSession],
    subscriptions: SubscriptionStore,
    deliveries: DeliveryStore,
) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

    @router.post(
        "/subscriptions",
        status_code=201,
        summary="Subscribe a partner's URL to event kinds; the signing secret is shown only here",
    )
    async def subscribe(body: NewSubscription, principal: Admin) -> dict[str, Any]:
        async with sessions() as session, session.begin():
            row, secret = await subscriptions.create(
                session,
                partner_id=body.partner_id,
                url=str(body.url),
                kinds=body.kinds,
                by=principal.subject,
            )
        return {**to_json(row), "secret": secret}

    @router.get("/subscriptions", summary="Subscriptions (without their secrets)")
    async def list_subscriptions(_: Admin, partner: str | None = None) -> dict[str, Any]:
        async with sessions() as session:
            rows = await subscriptions.listing(session, partner)
        return {"subscriptions": [to_json(row) for row in rows]}

    @router.delete("/subscriptions/{subscription_id}", status_code=204, summary="Stop a subscription")
    async def unsubscribe(subscription_id: UUID, _: Admin) -> None:
        async with sessions() as session, session.begin():
            if not await subscriptions.disable(session, subscription_id, datetime.now(UTC)):
                raise ProblemError(404, "Not found", "no such active subscription")

    @router.get("/deliveries", summary="Webhook deliveries, newest first (status=failed for failures)")
    async def list_deliveries(
        _: Staff,
        status: Literal["pending", "sending", "sent", "failed"] | None = None,
        partner: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        async with sessions() as session:
            rows = await deliveries.listing(
                session, status=status, channel="webhook", partner=partner, limit=limit
            )
        return {"deliveries": [_public(row) for row in rows]}

    @router.post(
        "/deliveries/{notification_id}/replay",
        status_code=202,
        summary="Send a finished delivery again (same webhook-id, fresh attempts)",
    )
    async def replay(notification_id: UUID, _: Staff) -> dict[str, Any]:
        async with sessions() as session, session.begin():
            found = await deliveries.find(session, notification_id)
            if found is None or found["channel"] != "webhook":
                raise ProblemError(404, "Not found", "no such webhook delivery")
            if not await deliveries.replay(session, notification_id):
                raise ProblemError(409, "Not finished", "the delivery is still pending or being sent")
        return {"notification_id": str(notification_id), "status": "pending"}

    return router


def _public(row: dict[str, Any]) -> dict[str, Any]:
    out = to_json({k: v for k, v in row.items() if k not in ("context", "claim_token")})
    out["payload"] = row["context"].get("payload")
    return out
