"""Case packet links: signed for one placement, expiring, bound to their purpose and secret."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from lastline_shared.auth import sign_link
from lastline_shared.packet_links import (
    PACKET_LINK_PURPOSE,
    PacketLink,
    PacketLinkError,
    packet_url,
    sign_packet_link,
    verify_packet_link,
)
from lastline_shared.proposal_links import sign_proposal_link
from lastline_shared.settings import IntakeSettings

SECRET = "packet-link-test-secret-of-32-bytes-or-more"
SETTINGS = IntakeSettings(auth_jwt_secret=SECRET, packet_link_ttl_hours=5)
LINK = PacketLink(case_id=uuid.uuid4(), volunteer_id=uuid.uuid4(), match_id=uuid.uuid4())


def _sign(settings: IntakeSettings = SETTINGS) -> str:
    return sign_packet_link(settings, LINK.case_id, LINK.volunteer_id, LINK.match_id)


def test_round_trip_names_the_placement() -> None:
    assert verify_packet_link(_sign(), secret=SECRET) == LINK


def test_lives_as_long_as_the_setting_says() -> None:
    claims = jwt.decode(_sign(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 5 * 3600
    assert claims["aud"].endswith(PACKET_LINK_PURPOSE)


def test_expired_link_says_so_and_still_names_the_placement_for_the_audit() -> None:
    payload = {k: str(v) for k, v in (("case_id", LINK.case_id), ("volunteer_id", LINK.volunteer_id))}
    token = sign_link(
        payload | {"match_id": str(LINK.match_id)},
        timedelta(seconds=-60),
        secret=SECRET,
        purpose=PACKET_LINK_PURPOSE,
    )
    with pytest.raises(PacketLinkError) as caught:
        verify_packet_link(token, secret=SECRET)
    assert caught.value.expired
    assert caught.value.link == LINK


def test_tampered_link_is_refused_and_names_nobody() -> None:
    header, payload, signature = _sign().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["match_id"] = str(uuid.uuid4())
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(PacketLinkError) as caught:
        verify_packet_link(f"{header}.{forged}.{signature}", secret=SECRET)
    assert not caught.value.expired
    assert caught.value.link is None


@pytest.mark.parametrize(
    "token",
    [
        # Another secret, another purpose (a proposal link), a packet-purpose link naming no match.
        sign_packet_link(
            IntakeSettings(auth_jwt_secret=SECRET + "-other"), LINK.case_id, LINK.volunteer_id, LINK.match_id
        ),
        sign_proposal_link(
            secret=SECRET,
            proposal_id=LINK.match_id,
            volunteer_id=LINK.volunteer_id,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        ),
        sign_link(
            {"case_id": str(LINK.case_id)}, timedelta(hours=1), secret=SECRET, purpose=PACKET_LINK_PURPOSE
        ),
        "not-a-token",
    ],
    ids=["other-secret", "proposal-link", "incomplete", "garbage"],
)
def test_other_tokens_do_not_open_packets(token: str) -> None:
    with pytest.raises(PacketLinkError) as caught:
        verify_packet_link(token, secret=SECRET)
    assert not caught.value.expired


def test_url() -> None:
    assert (
        packet_url("https://intake.example.org/", "tok") == "https://intake.example.org/v1/case-packets/tok"
    )
