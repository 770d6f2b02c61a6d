"""Intake as its own process picks up a partner created after it started (pattern subscription: no
redeploy), turns the partner's submission into a canonical event and a bad one into a rejection."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from lastline_infra import InfraEndpoints
from lastline_shared.contracts.envelope import KafkaRecord, encode
from lastline_shared.contracts.examples import example_submissions
from lastline_shared.contracts.submissions import CaseOpenedSubmission
from tests.e2e.conftest import service_process, stop_all
from tests.support.kafka import read_all

pytestmark = pytest.mark.e2e


async def _cli(*args: str, env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "lastline_intake",
        *args,
        env=os.environ | {"INTAKE_TOPIC_PARTITIONS": "2"} | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _publish(bootstrap: str, *records: KafkaRecord) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for r in records:
            await producer.send_and_wait(r.topic, r.value, key=r.key, headers=list(r.headers))
    finally:
        await producer.stop()


@pytest.mark.asyncio(loop_scope="session")
async def test_new_partner_topic_is_consumed_without_restart(infra: InfraEndpoints, tmp_path: Path) -> None:
    # A schema of its own (the superuser's URL: the intake role may not create schemas); the CLI
    # writes the partner where the service reads it.
    env = {
        "INTAKE_DB_SCHEMA": f"e2e_intake_{uuid.uuid4().hex[:8]}",
        "INTAKE_DATABASE_URL": infra.database_url,
        "INTAKE_KAFKA_METADATA_MAX_AGE_MS": "2000",
    }
    intake = service_process("intake", infra, tmp_path, **env)
    intake.start()
    try:
        for _ in range(120):
            if await intake.ready():
                break
            if intake.exit_code() is not None:
                break
            await asyncio.sleep(0.5)
        else:
            pytest.fail(intake.log_tail())
        assert intake.exit_code() is None, intake.log_tail()
        partner = f"late-{uuid.uuid4().hex[:6]}"
        await _cli(
            "partners",
            "create",
            partner,
            "--name",
            "Late",
            "--kind",
            "clinic",
            "--email",
            "o@example.org",
            env=env,
        )
        case = next(s for s in example_submissions(partner) if isinstance(s, CaseOpenedSubmission))
        hearing = datetime.now(UTC).date() + timedelta(days=30)
        case = case.model_copy(update={"next_hearing_date": hearing, "external_id": f"{partner}-c1"})
        good = encode(case, source=f"/partners/{partner}")
        bad = KafkaRecord(good.topic, b"c2", good.headers[:1] + good.headers[2:], b"{}")  # no ce_id
        await _publish(infra.kafka_bootstrap, good, bad)

        rejections = await read_all(
            infra.kafka_bootstrap, f"partner.{partner}.rejections", expect=1, timeout_s=60
        )
        assert len(rejections) == 1
        rejection = json.loads(rejections[0].value)
        assert {r["code"] for r in rejection["reasons"]} >= {"missing_header"}

        mine = []
        for _ in range(30):
            records = await read_all(infra.kafka_bootstrap, "cases", expect=10**9, timeout_s=1)
            mine = [r for r in records if partner.encode() in r.value]
            if mine:
                break
        assert len(mine) == 1
        opened = json.loads(mine[0].value)
        assert opened["referrals"] == [{"partner_id": partner, "external_id": f"{partner}-c1"}]
        assert b"Ixchel" not in mine[0].value
        assert "Ixchel" not in intake.log_path.read_text()
    finally:
        await stop_all([intake])
