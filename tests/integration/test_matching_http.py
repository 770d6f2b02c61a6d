"""Volunteers answer through signed links, staff override: matching's HTTP on the real database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import pytest_asyncio

from lastline_matching import responses, staff
from lastline_shared.auth import issue_staff_token, sign_link
from lastline_shared.contracts.matches import MatchMade, MatchProposed, MatchRetracted
from lastline_shared.ops import create_http_app
from lastline_shared.proposal_links import PROPOSAL_LINK_PURPOSE, proposal_url, sign_proposal_link
from lastline_shared.settings import MatchingSettings
from tests.integration.test_matching_flow import NOW, TODAY, case, volunteer
from tests.support.matching import MatchingDb, matching_db

pytestmark = pytest.mark.integration

SETTINGS = MatchingSettings()
BASE = "http://matching.test"


@pytest_asyncio.fixture(loop_scope="session")
async def db(infra) -> AsyncIterator[MatchingDb]:  # type: ignore[no-untyped-def]
    async with matching_db(infra.database_url, TODAY) as matching:
        yield matching


@pytest_asyncio.fixture(loop_scope="session")
async def client(db: MatchingDb) -> AsyncIterator[httpx.AsyncClient]:
    app = create_http_app(
        SETTINGS,
        routers=[
            responses.build_router(sessions=db.sessions, placement=db.placement, settings=SETTINGS),
            staff.build_router(sessions=db.sessions, placement=db.placement),
        ],
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
        yield http


def link(proposal: MatchProposed, answer: str = "accept", **kw: object) -> str:
    token = sign_proposal_link(
        secret=SETTINGS.auth_jwt_secret,
        proposal_id=proposal.proposal_id,
        volunteer_id=kw.get("volunteer_id", proposal.volunteer_id),  # type: ignore[arg-type]
        expires_at=datetime.now(UTC) + timedelta(hours=1),
    )
    return proposal_url(BASE, token, answer)  # type: ignore[arg-type]


@pytest.mark.asyncio(loop_scope="session")
async def test_accept_page_then_attested_accept(db: MatchingDb, client: httpx.AsyncClient) -> None:
    await db.feed(volunteer(), case(), now=datetime.now(UTC))
    [proposal] = await db.of(MatchProposed)
    page = await client.get(link(proposal))
    assert page.status_code == 200
    assert "Stewart Detention Center" in page.text
    assert "asylum" in page.text
    assert not await db.of(MatchMade)  # looking is not accepting
    refused = await client.post(link(proposal), data={})
    assert refused.status_code == 422
    accepted = await client.post(link(proposal), data={"conflict_attested": "true"})
    assert accepted.status_code == 200
    assert "placed" in accepted.text
    [made] = await db.of(MatchMade)
    again = await client.post(link(proposal), json={"conflict_attested": True})
    assert again.json()["outcome"] == "accepted"
    assert len(await db.of(MatchMade)) == 1
    assert made.volunteer_id == proposal.volunteer_id


@pytest.mark.asyncio(loop_scope="session")
async def test_links_are_bound_to_their_volunteer_and_expire(
    db: MatchingDb, client: httpx.AsyncClient
) -> None:
    await db.feed(volunteer(), case(), now=datetime.now(UTC))
    [proposal] = await db.of(MatchProposed)
    other = await client.post(link(proposal, volunteer_id=uuid.uuid4()), json={"conflict_attested": True})
    assert other.status_code == 404
    token = link(proposal).split("/")[-2]
    assert (await client.get(proposal_url(BASE, token[:-4] + "AAAA", "accept"))).status_code == 403
    payload = {"proposal_id": str(proposal.proposal_id), "volunteer_id": str(proposal.volunteer_id)}
    expired = sign_link(
        payload, -timedelta(hours=1), secret=SETTINGS.auth_jwt_secret, purpose=PROPOSAL_LINK_PURPOSE
    )
    assert (await client.get(proposal_url(BASE, expired, "accept"))).status_code == 410
    declined = await client.post(link(proposal, "decline"), data={"reason": "schedule"})
    assert declined.status_code == 200
    assert "Declined" in declined.text


@pytest.mark.asyncio(loop_scope="session")
async def test_staff_override_needs_admin_and_places(db: MatchingDb, client: httpx.AsyncClient) -> None:
    first, chosen = volunteer(), volunteer()
    c = case()
    await db.feed(first, c, chosen, now=NOW)
    url = f"/v1/cases/{c.case_id}/placements"
    body = {"volunteer_id": str(chosen.volunteer_id)}
    staff_token = issue_staff_token(SETTINGS, "staff:ana")
    admin_token = issue_staff_token(SETTINGS, "staff:lee", "admin")
    assert (await client.post(url, json=body)).status_code == 401
    assert (
        await client.post(url, json=body, headers={"Authorization": f"Bearer {staff_token}"})
    ).status_code == 403
    placed = await client.post(url, json=body, headers={"Authorization": f"Bearer {admin_token}"})
    assert placed.status_code == 201
    [made] = await db.of(MatchMade)
    assert (made.volunteer_id, made.overridden_by) == (chosen.volunteer_id, "staff:lee")
    assert [r.reason for r in await db.of(MatchRetracted)] == ["staff_override"]
    view = await client.get(f"/v1/cases/{c.case_id}", headers={"Authorization": f"Bearer {staff_token}"})
    assert view.json()["status"] == "placed"
    assert [m["overridden_by"] for m in view.json()["matches"]] == ["staff:lee"]
