"""The links in a proposal email: the volunteer accepts or declines through matching's endpoint.

Notifications signs them when it emails a ``match-proposed``; matching verifies them. Both share
``auth_jwt_secret``; the purpose binds a token to proposals, so it opens nothing else, and it
expires with the proposal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import SecretStr

from lastline_shared.auth import sign_link, verify_link

PROPOSAL_LINK_PURPOSE = "proposal-response"
Answer = Literal["accept", "decline"]


def sign_proposal_link(
    *, secret: SecretStr | str, proposal_id: UUID, volunteer_id: UUID, expires_at: datetime
) -> str:
    """A token for one proposal and its volunteer, valid until the proposal expires (at least a minute)."""
    ttl = max(expires_at - datetime.now(UTC), timedelta(minutes=1))
    payload = {"proposal_id": str(proposal_id), "volunteer_id": str(volunteer_id)}
    return sign_link(payload, ttl, secret=secret, purpose=PROPOSAL_LINK_PURPOSE)


def verify_proposal_link(token: str, *, secret: SecretStr | str) -> tuple[UUID, UUID]:
    """``(proposal_id, volunteer_id)``; raises ``LinkError`` (expired, tampered, other purpose)."""
    payload = verify_link(token, secret=secret, purpose=PROPOSAL_LINK_PURPOSE)
    return UUID(payload["proposal_id"]), UUID(payload["volunteer_id"])


def proposal_url(matching_base_url: str, token: str, answer: Answer) -> str:
    """Where the volunteer's browser goes: a page that confirms the answer (and, to accept, asks
    for the conflict attestation) before anything changes."""
    return f"{matching_base_url.rstrip('/')}/v1/proposals/{token}/{answer}"
