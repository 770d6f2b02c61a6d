"""Events of the ``notifications`` topic, keyed by ``notification_id`` (one delivery, all attempts)."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field

from lastline_shared.contracts.base import Event
from lastline_shared.contracts.enums import DeliveryFailure, NotificationChannel, RecipientKind
from lastline_shared.contracts.primitives import CaseId, Code, Count, Flag, ShortText, Timestamp
from lastline_shared.contracts.topics import NOTIFICATIONS


class _Delivery(Event):
    topic: ClassVar[str] = NOTIFICATIONS.name

    notification_id: UUID
    channel: NotificationChannel
    template: Code
    """The message template, e.g. ``match_proposed``."""
    recipient_kind: RecipientKind
    recipient_id: ShortText
    """A volunteer id, a partner id or a staff account; never an address."""
    case_id: CaseId | None = None
    caused_by: UUID | None = None
    """The ``ce_id`` of the event that triggered this notification."""
    attempt: Count = Field(default=1, ge=1)


class NotificationSent(_Delivery):
    """A notification was delivered (handed to the mail server, webhook answered 2xx, ...)."""

    event_type: ClassVar[str] = "notification-sent"


class NotificationFailed(_Delivery):
    """A delivery attempt failed."""

    event_type: ClassVar[str] = "notification-failed"

    failure: DeliveryFailure
    detail: ShortText | None = None
    """A short technical detail, e.g. ``HTTP 503``."""
    will_retry: Flag
    next_attempt_at: Timestamp | None = None
