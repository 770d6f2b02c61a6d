"""The link to a case packet: how a placed volunteer reaches the client's details in intake.

Notifications signs it when it emails a ``match-made``; intake verifies it. Both share
``auth_jwt_secret``; the purpose binds the token to case packets, so it opens nothing else. The link
names the case, the volunteer and the match: intake serves the packet only while that match is
active, whatever the link's expiry says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from uuid import UUID

import jwt
from pydantic import SecretStr

from lastline_shared.auth import LinkError, sign_link, verify_link

PACKET_LINK_PURPOSE = "case-packet"


class PacketLinkSettings(Protocol):
    """What signing needs: the shared secret and how long a link lives."""

    @property
    def auth_jwt_secret(self) -> SecretStr: ...
    @property
    def packet_link_ttl_hours(self) -> int: ...


@dataclass(frozen=True, slots=True)
class PacketLink:
    case_id: UUID
    volunteer_id: UUID
    match_id: UUID


class PacketLinkError(LinkError):
    """An invalid or expired packet link; ``link`` holds what an expired one named (for the audit)."""

    def __init__(self, message: str, *, expired: bool = False, link: PacketLink | None = None) -> None:
        super().__init__(message, expired=expired)
        self.link = link


def sign_packet_link(settings: PacketLinkSettings, case_id: UUID, volunteer_id: UUID, match_id: UUID) -> str:
    """A token for one volunteer's placement on one case, valid for ``packet_link_ttl_hours``."""
    payload = {"case_id": str(case_id), "volunteer_id": str(volunteer_id), "match_id": str(match_id)}
    ttl = timedelta(hours=settings.packet_link_ttl_hours)
    return sign_link(payload, ttl, secret=settings.auth_jwt_secret, purpose=PACKET_LINK_PURPOSE)


def verify_packet_link(token: str, *, secret: SecretStr | str) -> PacketLink:
    """What the link names; raises ``PacketLinkError`` (tampered, other purpose, expired)."""
    try:
        payload = verify_link(token, secret=secret, purpose=PACKET_LINK_PURPOSE)
    except LinkError as error:
        link = _expired_link(token) if error.expired else None
        raise PacketLinkError(str(error), expired=error.expired, link=link) from error
    link = _link(payload)
    if link is None:
        raise PacketLinkError("invalid link: it does not name a case, volunteer and match")
    return link


def packet_url(intake_base_url: str, token: str) -> str:
    """Where the volunteer's browser goes: a page asking for the conflict attestation, then the packet."""
    return f"{intake_base_url.rstrip('/')}/v1/case-packets/{token}"


def _link(payload: dict[str, Any]) -> PacketLink | None:
    try:
        return PacketLink(
            case_id=UUID(str(payload["case_id"])),
            volunteer_id=UUID(str(payload["volunteer_id"])),
            match_id=UUID(str(payload["match_id"])),
        )
    except (KeyError, ValueError):
        return None


def _expired_link(token: str) -> PacketLink | None:
    # PyJWT checks the signature before the expiry, so an "expired" token was signed by us: what it
    # names is trustworthy enough to record who tried to use it.
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return _link(payload)
