"""Partner webhooks, signed per Standard Webhooks (https://www.standardwebhooks.com/).

Each request carries ``webhook-id`` (the delivery's id: the same on every retry, so a receiver can
drop a repeat), ``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``, keyed with the partner's secret). Signing
is the ``standardwebhooks`` package's, the reference implementation a partner verifies with.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from lastline_notifications.deliveries import DeliveryError
from lastline_shared.contracts.enums import DeliveryFailure

SECRET_PREFIX = "whsec_"  # noqa: S105  (the format's prefix, not a secret)
USER_AGENT = "Lastline-Webhooks/1"


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(secret: str, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, at.astimezone(UTC), body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class WebhookSender:
    """POSTs signed deliveries; one client (connection pool) per process, a timeout per request."""

    def __init__(self, *, timeout_s: float, client: httpx.AsyncClient | None = None) -> None:
        self._timeout = httpx.Timeout(timeout_s)
        self._client = client or httpx.AsyncClient(
            timeout=self._timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def send(self, url: str, secret: str, message_id: str, payload: dict[str, Any]) -> None:
        """Deliver once; raises ``DeliveryError`` unless the endpoint answered 2xx."""
        body = body_of(payload)
        headers = signed_headers(secret, message_id, body, datetime.now(UTC))
        try:
            response = await self._client.post(url, content=body, headers=headers, timeout=self._timeout)
        except httpx.TimeoutException as error:
            raise DeliveryError(
                DeliveryFailure.TIMEOUT, f"no answer within {self._timeout.read:g} s"
            ) from error
        except httpx.HTTPError as error:
            raise DeliveryError(DeliveryFailure.CONNECTION_ERROR, type(error).__name__) from error
        if 200 <= response.status_code < 300:
            return
        # 410 Gone: the endpoint says it will never take deliveries again (Standard Webhooks).
        raise DeliveryError(
            DeliveryFailure.HTTP_ERROR,
            f"HTTP {response.status_code}",
            permanent=response.status_code == 410,
        )

    async def close(self) -> None:
        await self._client.aclose()
