"""``make run``'s demo: the supervisor with the mail catcher and a small demo network places cases.

``python -m lastline_infra.platform run --mail-catcher --demo`` runs as a subprocess on free ports,
each service under a name, consumer groups and schema of its own (groups started at the shared
topics' end, so the history other runs left is not replayed). Within the time budget the catcher has
caught email, the demo's volunteers answered proposals from it, and reporting counts placed cases;
SIGTERM then stops everything with exit code 0 and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from lastline_infra import SERVICES, InfraEndpoints
from lastline_infra.processes import pid_exists
from lastline_shared.auth import issue_staff_token
from lastline_shared.contracts.topics import REJECTIONS_PATTERN, SUBMISSIONS_PATTERN
from lastline_shared.kafka_admin import start_group_at_end
from lastline_shared.settings import ReportingSettings
from tests.e2e.conftest import READY_WITHIN_S, free_port
from tests.support.output import read_until

pytestmark = pytest.mark.e2e

PLACED_WITHIN_S = 90.0
CANONICAL = ["volunteers", "cases", "facilities"]
DEMO_PARTNERS = {"southeast-detention-project", "rio-grande-law-clinic"}  # the small demo's


async def consumer_groups(bootstrap: str, names: dict[str, str]) -> dict[str, list[str]]:
    """Each consumer group the services will form -> the topics it reads now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = await admin.list_topics()
    finally:
        await admin.close()
    submissions = [t for t in topics if re.match(SUBMISSIONS_PATTERN, t)]
    rejections = [t for t in topics if re.match(REJECTIONS_PATTERN, t)]
    return {
        f"lastline-{names['intake']}.submissions": submissions,
        f"lastline-{names['matching']}.main": CANONICAL,
        f"lastline-{names['notifications']}.people": ["volunteers", "cases"],
        f"lastline-{names['notifications']}.matches": ["matches"],
        f"lastline-{names['notifications']}.rejections": rejections,
        f"lastline-{names['reporting']}.facts": [*CANONICAL, "matches", "notifications"],
        f"lastline-{names['reporting']}.rejections": rejections,
    }


async def eventually(check: object, what: str, within_s: float, logs: Path) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            if await check():  # type: ignore[operator]
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            demo_log = (logs / "demo.log").read_text() if (logs / "demo.log").exists() else ""
            pytest.fail(f"{what} not within {within_s:.0f}s; the demo's log:\n{demo_log[-3000:]}")
        await asyncio.sleep(1)


@pytest.mark.asyncio(loop_scope="session")
async def test_make_run_demo_sends_email_and_places_cases(infra: InfraEndpoints, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:6]
    names = {service: f"{service}-demo-{run}" for service in SERVICES}
    ports = {service: free_port() for service in SERVICES}
    mail_smtp, mail_http = free_port(), free_port()
    env = dict(os.environ) | {
        "LASTLINE_VAR_DIR": str(tmp_path),
        "LASTLINE_DEMO_SCALE": "small",
        "MAILCATCHER_SMTP_PORT": str(mail_smtp),
        "MAILCATCHER_HTTP_PORT": str(mail_http),
        # Escalations appear within seconds (the default checks once a minute).
        "MATCHING_ESCALATION_CHECK_EVERY_S": "5",
    }
    for service in SERVICES:
        prefix = service.upper()
        env |= {
            f"{prefix}_HTTP_PORT": str(ports[service]),
            f"{prefix}_SERVICE_NAME": names[service],
            f"{prefix}_DB_SCHEMA": f"e2e_demo_{run}_{service}",
            # The superuser: a service role may not create a schema of another name.
            f"{prefix}_DATABASE_URL": infra.database_url,
        }
    for group, topics in (await consumer_groups(infra.kafka_bootstrap, names)).items():
        await start_group_at_end(infra.kafka_bootstrap, group, topics)

    supervisor = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "lastline_infra.platform", "run", "--mail-catcher", "--demo"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert supervisor.stdout is not None
    logs = tmp_path / "log"
    try:
        output = await read_until(supervisor.stdout, "Demo data", READY_WITHIN_S + 30)
        mail = f"http://127.0.0.1:{mail_http}"
        reporting = f"http://127.0.0.1:{ports['reporting']}"
        assert f"{reporting}/dashboard" in output
        assert f"http://127.0.0.1:{ports['notifications']}/v1/inbox/items" in output
        assert f"{mail}  (SMTP 127.0.0.1:{mail_smtp})" in output
        assert "lastline token --sub" in output
        started = {path.stem: int(path.read_text()) for path in (tmp_path / "run").glob("*.pid")}
        assert started.keys() == {*SERVICES, "platform", "mailcatcher", "demo"}

        token = issue_staff_token(ReportingSettings(), "e2e-demo")
        async with httpx.AsyncClient(timeout=10) as client:

            async def email_caught() -> bool:
                messages = (await client.get(f"{mail}/api/messages")).json()["messages"]
                return any("/v1/proposals/" in (m["text"] or "") for m in messages)

            async def cases_placed() -> bool:
                # The demo's own partners: other runs on this broker may place cases of theirs.
                response = await client.get(
                    f"{reporting}/api/v1/staff/cases",
                    params={"by": "partner"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                rows = response.json()["rows"]
                return sum(int(row["placed"]) for row in rows if row["key"] in DEMO_PARTNERS) > 0

            await eventually(email_caught, "a proposal email in the catcher", PLACED_WITHIN_S, logs)
            await eventually(cases_placed, "placed cases on the dashboard", PLACED_WITHIN_S, logs)
            page = await client.get(f"{mail}/")
            assert page.status_code == 200
            assert "/messages/" in page.text

        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(supervisor.wait(), 60) == 0
        rest = (await supervisor.stdout.read()).decode()
        for name in (*SERVICES, "mailcatcher", "demo"):
            assert f"{name} stopped (exit code 0)" in rest, rest
        for name, pid in started.items():
            assert not pid_exists(pid), f"{name} (pid {pid}) still runs"
        assert not list((tmp_path / "run").glob("*.pid"))

        # Run again on the same database: the partners exist, the same volunteers are sent again.
        again = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "lastline_intake", "simulate", "--no-progress", "--rate", "50"),
            *("--volunteers", "3", "--cases", "2", "--partner", "southeast-detention-project"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        again_output = (await asyncio.wait_for(again.communicate(), 60))[0].decode()
        assert again.returncode == 0, again_output
        assert "cases:sent=2" in again_output
        assert "volunteers:sent=3" in again_output
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()
