"""The whole platform as a partner meets it: the four services as separate processes on the real
Kafka and PostgreSQL, fed by a partner's own Kafka client.

Every partner event here is published with kcat (librdkafka; no Lastline code), its CloudEvents
binary-mode headers and JSON body written out below as the docs describe them (docs/architecture.md
"Events on the wire", docs/intake.md, docs/schemas/partner/). The flows, one service set for all:

1. a volunteer registration and a case opening become a proposal; the volunteer accepts through the
   signed link in the email they received; the placement is a `match-made`, an email, a signed
   partner webhook and one more placed case on reporting's dashboard API;
2. a declined proposal goes to the next volunteer;
3. a case nobody can take (a language nobody speaks, the hearing in two days) escalates, with its
   causes, to the staff inbox, the partner's webhook and the on-call email;
4. a transfer out of the placed volunteer's reach ends the match and proposes the case again.

No client name, A-number or date of birth reaches an email, a webhook or a service's log.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import httpx
import pytest
import pytest_asyncio
from standardwebhooks import Webhook

from lastline_infra import SERVICES, InfraEndpoints
from lastline_infra.platform import ServiceProcess, wait_all_ready
from lastline_shared.auth import issue_staff_token
from lastline_shared.clock import network_today
from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.cases import CaseOpened, CaseUpdated
from lastline_shared.contracts.matches import (
    CaseEscalated,
    MatchDeclined,
    MatchEnded,
    MatchMade,
    MatchProposed,
)
from lastline_shared.contracts.profiles import PartnerRef
from lastline_shared.contracts.topics import CASES, MATCHES, VOLUNTEERS, submissions_topic
from lastline_shared.contracts.volunteers import VolunteerRegistered
from lastline_shared.packet_links import verify_packet_link
from lastline_shared.proposal_links import verify_proposal_link
from lastline_shared.settings import NotificationsSettings
from tests.e2e.conftest import READY_WITHIN_S, free_port, service_process, stop_all
from tests.e2e.test_intake_stream import cli as intake_cli
from tests.support.catchers import Mailbox, Receiver, plain_text, readable, smtp_catcher, webhook_receiver
from tests.support.groups import start_service_at_end
from tests.support.kcat import kcat_produce
from tests.support.tail import TopicTail, tail

pytestmark = pytest.mark.e2e

T = TypeVar("T", bound=Contract)
M = TypeVar("M", MatchProposed, MatchDeclined, MatchMade, MatchEnded)

WAIT_S = 120.0  # for one step of a flow: a second or two here alone, far longer beside a benchmark
HEARING_IN_DAYS = 30  # far from every escalation level and the urgent fan-out
# Mayan languages, one per flow, so that no flow's volunteers fit another flow's cases; none of them
# is spoken in the demo or the simulator (which use Ixil as the language nobody speaks).
PLACED, DECLINED, TRANSFERRED, SPOKEN_BY_NOBODY = "poh", "kek", "jac", "tzj"

# Timers for a test; everything else as `make run` configures it.
TIMERS = {
    "INTAKE_KAFKA_METADATA_MAX_AGE_MS": "5000",  # how soon intake sees the partner's new topic
    "MATCHING_ESCALATION_CHECK_EVERY_S": "1",
    "MATCHING_EXPIRY_CHECK_EVERY_S": "1",
    # A volunteer's contact may reach notifications after their first offer (the topics are read
    # independently, and slowly on a busy machine): retry soon, and for long enough.
    "NOTIFICATIONS_RETRY_BASE_S": "1",
    "NOTIFICATIONS_RETRY_MAX_S": "4",
    "NOTIFICATIONS_EMAIL_MAX_ATTEMPTS": "20",
}


# -- what a partner writes: the documented wire format, as text ----------------------------------


def partner_headers(partner: str, event_type: str, external_id: str) -> list[tuple[str, str]]:
    """CloudEvents 1.0 in Kafka binary mode (docs/architecture.md, "Events on the wire")."""
    return [
        ("ce_specversion", "1.0"),
        ("ce_id", str(uuid.uuid4())),
        ("ce_source", f"/partners/{partner}"),
        ("ce_type", event_type),
        ("ce_time", datetime.now(UTC).isoformat()),
        ("ce_subject", external_id),
        ("content-type", "application/json"),
    ]


@dataclass(frozen=True)
class Client:
    """A detained person's details, as only the referring partner and intake may hold them."""

    given_name: str
    family_name: str
    a_number: str
    date_of_birth: str

    @classmethod
    def invent(cls) -> Client:
        letters = "".join(random.choices(string.ascii_lowercase, k=8)).title()
        return cls(
            given_name=f"Ixchel{letters[:4]}",
            family_name=f"Tzoc{letters[4:]}",
            a_number="2" + "".join(random.choices(string.digits, k=8)),
            date_of_birth=date(
                1980 + random.randrange(20), 1 + random.randrange(12), 1 + random.randrange(28)
            ).isoformat(),
        )

    def pii(self) -> tuple[str, ...]:
        return (self.given_name, self.family_name, self.a_number, self.date_of_birth)


def volunteer_body(
    external_id: str, email: str, language: str, *, reach: list[str], remote: bool
) -> dict[str, Any]:
    """A ``volunteer-registered`` submission (docs/schemas/partner/volunteer-registered.v1.json)."""
    return {
        "external_id": external_id,
        "name": f"Dana {external_id.title()}",
        "email": email,
        "roles": ["attorney"],
        "languages": [language],  # only: never a fit for anyone else's cases on a shared broker
        "experience_level": "experienced",
        "practice_areas": ["asylum", "bond"],
        "bar_admissions": {"states": ["GA", "FL"]},
        "eoir_registered": True,
        "max_active_cases": 2,
        "facilities_reachable": reach,
        "remote": remote,
    }


def case_body(
    external_id: str, client: Client, language: str, *, facility: str, court: str, hearing: date
) -> dict[str, Any]:
    """A ``case-opened`` (or ``case-updated``) submission (docs/schemas/partner/case-opened.v1.json)."""
    return {
        "external_id": external_id,
        "client": {
            "given_name": client.given_name,
            "family_name": client.family_name,
            "a_number": client.a_number,
            "date_of_birth": client.date_of_birth,
            "country_of_nationality": "GT",
        },
        "facility_code": facility,
        "court_code": court,
        "case_type": "asylum",
        "languages": [language],
        "next_hearing_date": hearing.isoformat(),
        "next_hearing_kind": "individual_merits",
        "detained_since": (hearing - timedelta(days=60)).isoformat(),
    }


# -- the running platform ------------------------------------------------------------------------


@dataclass
class Platform:
    """The four services of one test run, what catches their output, and the partner's side."""

    bootstrap: str
    partner: str
    services: dict[str, ServiceProcess]
    events: TopicTail
    mailbox: Mailbox
    receiver: Receiver
    webhook_secret: str
    http: httpx.AsyncClient
    staff_token: str
    settings: NotificationsSettings
    db: asyncpg.Connection
    matching_schema: str
    emails: dict[UUID, str] = field(default_factory=dict)  # volunteer id -> address

    def url(self, service: str) -> str:
        return self.services[service].address.url

    async def submit(self, event_type: str, external_id: str, body: dict[str, Any]) -> None:
        await kcat_produce(
            self.bootstrap,
            submissions_topic(self.partner),
            key=external_id,
            headers=partner_headers(self.partner, event_type, external_id),
            value=json.dumps(body),
        )

    async def register(self, external_id: str, language: str, *, reach: list[str], remote: bool) -> UUID:
        """A volunteer registered by the partner; their id once intake published them."""
        email = f"{external_id}.{self.partner}@example.org"
        await self.submit(
            "volunteer-registered",
            external_id,
            volunteer_body(external_id, email, language, reach=reach, remote=remote),
        )
        [registered] = await self.events.wait_for(
            VolunteerRegistered,
            lambda v: v.registered_by == PartnerRef(partner_id=self.partner, external_id=external_id),
            timeout_s=WAIT_S,
        )
        self.emails[registered.volunteer_id] = email
        return registered.volunteer_id

    async def open_case(
        self,
        external_id: str,
        client: Client,
        language: str,
        *,
        hearing: date,
        facility: str = "STWRTGA",
        court: str = "LUM",
    ) -> UUID:
        """A case referred by the partner; its pseudonymous id once intake published it."""
        body = case_body(external_id, client, language, facility=facility, court=court, hearing=hearing)
        await self.submit("case-opened", external_id, body)
        referral = PartnerRef(partner_id=self.partner, external_id=external_id)
        [opened] = await self.events.wait_for(CaseOpened, lambda c: referral in c.referrals, timeout_s=WAIT_S)
        return opened.case_id

    async def of_case(self, model: type[T], case_id: UUID, *, count: int = 1) -> list[T]:
        """The case's ``model`` events (on ``matches`` or ``cases``), once there are ``count``."""
        return await self.events.wait_for(
            model, lambda e: getattr(e, "case_id", None) == case_id, count=count, timeout_s=WAIT_S
        )

    async def ours(self, model: type[M], case_id: UUID, *, count: int = 1) -> list[M]:
        """This matching's ``model`` events of the case, once there are ``count``. Any other matching
        service on the broker (someone's `make run` and its demo, which accepts what it is offered)
        sees the same cases and volunteers, and proposes and places too: only the proposals and
        matches in this matching's schema are this platform's."""
        table, column = (
            ("matches", "match_id") if model in (MatchMade, MatchEnded) else ("proposals", "proposal_id")
        )
        query = f'SELECT {column} FROM "{self.matching_schema}".{table} WHERE case_id = $1'
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            mine = {row[0] for row in await self.db.fetch(query, case_id)}
            found = [e for e in self.events.of(model) if e.case_id == case_id and getattr(e, column) in mine]
            if len(found) >= count:
                return found
            assert asyncio.get_running_loop().time() < deadline, f"{len(found)} of {count} {model.__name__}"
            await asyncio.sleep(0.1)

    async def mail(
        self, volunteer_id: UUID, what: str, match: Callable[[EmailMessage], bool]
    ) -> EmailMessage:
        """The first email to the volunteer that ``match`` accepts, once it arrived."""
        address = self.emails[volunteer_id]
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while not (found := [m for m in self.mailbox.to(address) if match(m)]):
            assert asyncio.get_running_loop().time() < deadline, f"no email to {address}: {what}"
            await asyncio.sleep(0.1)
        return found[0]

    async def offer(self, proposal: MatchProposed) -> EmailMessage:
        """The email that offers the volunteer the case: its links are signed for this proposal."""

        def offers_it(message: EmailMessage) -> bool:
            links = re.findall(r"/v1/proposals/([^/\s]+)/accept\b", plain_text(message))
            return [self.proposal_of(token) for token in links] == [proposal.proposal_id]

        return await self.mail(proposal.volunteer_id, f"the offer {proposal.proposal_id}", offers_it)

    def proposal_of(self, token: str) -> UUID:
        proposal_id, _ = verify_proposal_link(token, secret=self.settings.auth_jwt_secret)
        return proposal_id

    def packet_match(self, message: EmailMessage) -> UUID | None:
        """The match named by the case-packet link (on intake) in a placement email, if it has one."""
        base = re.escape(f"{self.url('intake')}/v1/case-packets/")
        tokens = re.findall(rf"{base}([^/\s]+)", plain_text(message))
        return (
            verify_packet_link(tokens[0], secret=self.settings.auth_jwt_secret).match_id if tokens else None
        )

    def link(self, message: EmailMessage, answer: str) -> str:
        """The proposal's accept or decline link, as the volunteer reads it in the email."""
        found = re.findall(rf"https?://\S+/v1/proposals/\S+/{answer}\b", plain_text(message))
        assert len(found) == 1, plain_text(message)
        assert found[0].startswith(self.url("matching"))
        return str(found[0])

    async def webhooks(self, webhook_type: str, external_id: str) -> list[dict[str, Any]]:
        """The partner's webhook deliveries of ``webhook_type`` about its case ``external_id``, each
        verified as Standard Webhooks signed with the partner's secret; once there is one."""
        hook = Webhook(self.webhook_secret)
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            payloads = [
                hook.verify(body, headers) for headers, body in self.receiver.requests.get(self.partner, [])
            ]
            found = [
                p for p in payloads if p["type"] == webhook_type and p["data"]["external_id"] == external_id
            ]
            if found:
                return found
            assert asyncio.get_running_loop().time() < deadline, (
                f"no {webhook_type} webhook for {external_id}"
            )
            await asyncio.sleep(0.1)

    async def staff_get(self, service: str, path: str, **params: str) -> Any:
        response = await self.http.get(
            f"{self.url(service)}{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.staff_token}"},
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def inbox(self, kind: str, case_id: UUID) -> list[dict[str, Any]]:
        """The partner's open staff-inbox items of ``kind`` about the case."""
        found = await self.staff_get("notifications", "/v1/inbox/items", partner=self.partner, kind=kind)
        return [item for item in found["items"] if item["case_id"] == str(case_id)]

    async def placed(self) -> int:
        """The partner's placed cases on reporting's staff API (the public one shows 1 to 4 as null)."""
        summary = await self.staff_get("reporting", "/api/v1/staff/summary", partner=self.partner)
        return int(summary["rows"][0]["placed"] or 0)

    def assert_no_pii(self, client: Client) -> None:
        """Nothing of the client's identity in any email, webhook body or service log."""
        texts = [readable(m) for m in self.mailbox.messages]
        texts += [body.decode() for requests in self.receiver.requests.values() for _, body in requests]
        texts += [s.log_path.read_text() for s in self.services.values()]
        for value in client.pii():
            leaks = [t[:200] for t in texts if value in t]
            assert not leaks, f"{value!r} leaked: {leaks}"


CREATE_SCHEMA = 'CREATE SCHEMA "{schema}" AUTHORIZATION "{service}"'  # it runs with its own role
DROP_SCHEMA = 'DROP SCHEMA IF EXISTS "{schema}" CASCADE'


async def _for_each_schema(infra: InfraEndpoints, schemas: dict[str, str], statement: str) -> None:
    conn = await asyncpg.connect(infra.asyncpg_dsn)
    try:
        for service, schema in schemas.items():
            await conn.execute(statement.format(schema=schema, service=service))
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def platform(
    infra: InfraEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    run = uuid.uuid4().hex[:8]
    partner = f"flows-{run}"
    bootstrap = infra.kafka_bootstrap
    # Names of their own: own consumer groups (started at the topics' end), inboxes and schemas.
    names = {s: f"{s}-flows-{run}" for s in SERVICES}
    schemas = {s: f"e2e_{s}_{run}" for s in SERVICES}
    env = {
        s: {f"{s.upper()}_SERVICE_NAME": names[s], f"{s.upper()}_DB_SCHEMA": schemas[s]} | TIMERS
        for s in SERVICES
    }
    await _for_each_schema(infra, schemas, CREATE_SCHEMA)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(_for_each_schema, infra, schemas, DROP_SCHEMA)
        await asyncio.gather(*(start_service_at_end(bootstrap, s, names[s]) for s in SERVICES))
        events = await stack.enter_async_context(tail(bootstrap, [VOLUNTEERS.name, CASES.name, MATCHES.name]))
        mailbox = stack.enter_context(smtp_catcher(free_port()))
        receiver = await stack.enter_async_context(webhook_receiver(free_port()))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=15))
        db = await asyncpg.connect(infra.asyncpg_dsn)
        stack.push_async_callback(db.close)

        log_dir = tmp_path_factory.mktemp("platform-logs")
        services = {
            s: service_process(s, infra, log_dir, **env[s]) for s in ("intake", "matching", "reporting")
        }
        services["notifications"] = service_process(
            "notifications",
            infra,
            log_dir,
            **env["notifications"],
            NOTIFICATIONS_SMTP_PORT=str(mailbox.port),
            NOTIFICATIONS_MATCHING_PUBLIC_URL=services["matching"].address.url,
            NOTIFICATIONS_INTAKE_PUBLIC_URL=services["intake"].address.url,
            NOTIFICATIONS_ONCALL_EMAILS=json.dumps([f"oncall.{partner}@example.org"]),
        )
        stack.push_async_callback(stop_all, list(services.values()))
        for service in services.values():
            service.start()
        # The partner joins while the services start, as it would join a running platform: intake's
        # pattern subscription finds its new topic (and reads it from the start) without a restart.
        partner_created = intake_cli(
            "partners", "create", partner, "--name", "Flows Clinic", "--kind", "clinic",
            "--email", "intake@example.org",
            env=env["intake"] | {"INTAKE_TOPIC_PARTITIONS": "2"},
        )  # fmt: skip
        await asyncio.gather(
            partner_created, wait_all_ready(list(services.values()), within_s=READY_WITHIN_S)
        )

        settings = NotificationsSettings()
        admin = issue_staff_token(settings, "e2e-admin@example.org", role="admin")
        subscribed = await http.post(
            f"{services['notifications'].address.url}/v1/webhooks/subscriptions",
            json={"partner_id": partner, "url": receiver.url(partner), "kinds": ["placed", "escalated"]},
            headers={"Authorization": f"Bearer {admin}"},
        )
        assert subscribed.status_code == 201, subscribed.text
        yield Platform(
            bootstrap=bootstrap,
            partner=partner,
            services=services,
            events=events,
            mailbox=mailbox,
            receiver=receiver,
            webhook_secret=subscribed.json()["secret"],
            http=http,
            staff_token=issue_staff_token(settings, "e2e-staff@example.org"),
            settings=settings,
            db=db,
            matching_schema=schemas["matching"],
        )


def in_days(days: int) -> date:
    return network_today("America/New_York")() + timedelta(days=days)


# -- the flows -----------------------------------------------------------------------------------


async def test_a_submission_becomes_a_placement_an_email_a_webhook_and_a_dashboard_figure(
    platform: Platform,
) -> None:
    placed_before = await platform.placed()
    volunteer = await platform.register("vol-placed", PLACED, reach=["STWRTGA"], remote=False)
    client = Client.invent()
    case = await platform.open_case("case-placed", client, PLACED, hearing=in_days(HEARING_IN_DAYS))

    [proposed] = await platform.ours(MatchProposed, case)
    assert proposed.volunteer_id == volunteer
    assert {"language_shared", "facility_reachable"} <= set(proposed.reasons)

    # The volunteer answers through the link in the email they received.
    accept = platform.link(await platform.offer(proposed), "accept")
    page = await platform.http.get(accept)  # what a mail scanner would fetch: changes nothing
    assert page.status_code == 200
    assert client.family_name not in page.text
    refused = await platform.http.post(accept, json={})
    assert refused.status_code == 422  # no conflict attestation, no placement
    answer = await platform.http.post(accept, json={"conflict_attested": True})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "accepted"

    [made] = await platform.ours(MatchMade, case)
    assert (made.volunteer_id, made.proposal_id) == (volunteer, proposed.proposal_id)
    assert str(made.match_id) == answer.json()["match_id"]

    # An email with the case packet's link, a signed webhook to the partner, a figure on the dashboard.
    await platform.mail(volunteer, "the placement", lambda m: platform.packet_match(m) == made.match_id)
    hooks = await platform.webhooks("case.placed", "case-placed")
    assert str(made.match_id) in [hook["data"]["match_id"] for hook in hooks]
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while (placed := await platform.placed()) == placed_before:
        assert asyncio.get_running_loop().time() < deadline, "the dashboard never counted the placement"
        await asyncio.sleep(0.2)
    assert placed == placed_before + 1
    platform.assert_no_pii(client)


async def test_a_declined_proposal_goes_to_the_next_volunteer(platform: Platform) -> None:
    volunteers = {
        await platform.register(f"vol-declines-{n}", DECLINED, reach=["STWRTGA"], remote=False)
        for n in (1, 2)
    }
    client = Client.invent()
    case = await platform.open_case("case-declined", client, DECLINED, hearing=in_days(HEARING_IN_DAYS))

    [first] = await platform.ours(MatchProposed, case)
    assert first.volunteer_id in volunteers
    decline = platform.link(await platform.offer(first), "decline")
    answer = await platform.http.post(decline, json={"reason": "schedule"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "declined"

    [declined] = await platform.ours(MatchDeclined, case)
    assert (declined.proposal_id, declined.reason) == (first.proposal_id, "schedule")
    _, second = await platform.ours(MatchProposed, case, count=2)
    assert second.volunteer_id == (volunteers - {first.volunteer_id}).pop()
    assert second.attempt == 2
    assert platform.link(await platform.offer(second), "accept")
    platform.assert_no_pii(client)


async def test_a_case_nobody_can_take_escalates_with_its_causes(platform: Platform) -> None:
    # Volunteers exist (this one, the other flows'), but none speaks the client's language, and the
    # hearing is in two days.
    await platform.register("vol-elsewhere", PLACED, reach=["STWRTGA"], remote=True)
    client = Client.invent()
    hearing = in_days(2)
    case = await platform.open_case("case-unplaceable", client, SPOKEN_BY_NOBODY, hearing=hearing)

    # (Other matching services on a shared broker may escalate the case too: any of them will do.)
    escalated = await platform.events.wait_for(
        CaseEscalated, lambda e: e.case_id == case and e.level == 3, timeout_s=WAIT_S
    )
    assert any(
        (e.days_to_hearing, e.next_hearing_date) == (2, hearing)
        and "attorney" in e.missing
        and "no_language_match" in e.causes
        for e in escalated
    ), escalated
    proposals = f'"{platform.matching_schema}".proposals'
    assert await platform.db.fetchval(f"SELECT count(*) FROM {proposals} WHERE case_id = $1", case) == 0

    # Staff see it in their inbox, the partner gets its webhook, the on-call list an email.
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not (items := await platform.inbox("escalation", case)):
        assert asyncio.get_running_loop().time() < deadline, "no escalation in the staff inbox"
        await asyncio.sleep(0.2)
    assert any(i["level"] == 3 and "no_language_match" in i["details"]["causes"] for i in items), items
    hooks = await platform.webhooks("case.escalated", "case-unplaceable")
    assert any("no_language_match" in hook["data"]["causes"] for hook in hooks), hooks
    oncall = f"oncall.{platform.partner}@example.org"
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not platform.mailbox.to(oncall):
        assert asyncio.get_running_loop().time() < deadline, "no on-call email"
        await asyncio.sleep(0.1)
    platform.assert_no_pii(client)


async def test_a_transfer_out_of_reach_ends_the_match_and_proposes_again(platform: Platform) -> None:
    at_stewart = await platform.register("vol-stewart", TRANSFERRED, reach=["STWRTGA"], remote=False)
    at_krome = await platform.register("vol-krome", TRANSFERRED, reach=["KRO"], remote=False)
    client = Client.invent()
    hearing = in_days(HEARING_IN_DAYS)
    case = await platform.open_case("case-transferred", client, TRANSFERRED, hearing=hearing)

    [proposed] = await platform.ours(MatchProposed, case)
    assert proposed.volunteer_id == at_stewart
    accept = platform.link(await platform.offer(proposed), "accept")
    answer = await platform.http.post(accept, json={"conflict_attested": True})
    assert answer.json()["outcome"] == "accepted", answer.text
    [made] = await platform.ours(MatchMade, case)

    # Moved from Stewart (Georgia) to Krome (Florida): the partner sends the case's new facts.
    body = case_body("case-transferred", client, TRANSFERRED, facility="KRO", court="KRO", hearing=hearing)
    await platform.submit("case-updated", "case-transferred", body)

    [updated] = await platform.of_case(CaseUpdated, case)
    assert "transferred" in updated.changes
    assert updated.facility_code == "KRO"
    [ended] = await platform.ours(MatchEnded, case)
    assert (ended.match_id, ended.volunteer_id, ended.reason) == (
        made.match_id,
        at_stewart,
        "case_transferred",
    )
    _, again = await platform.ours(MatchProposed, case, count=2)
    assert again.volunteer_id == at_krome
    await platform.offer(again)
    await platform.mail(at_stewart, "the placement ended", lambda m: "has ended" in str(m["Subject"]))
    platform.assert_no_pii(client)
