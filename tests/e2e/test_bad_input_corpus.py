"""The malformed corpus (``tests/corpus``) published to a fresh partner's topic, consumed by intake as
its own process, then valid submissions after it: each bad record becomes a rejection with the codes
its file names, on ``partner.<id>.rejections`` and in quarantine; the valid ones after it are accepted
(the consumer did not stop); the dead-letter topic holds exactly the corpus's known failures.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from lastline_infra import InfraEndpoints
from lastline_shared.clock import network_today
from lastline_shared.contracts.base import Submission
from lastline_shared.contracts.enums import VolunteerWithdrawalReason
from lastline_shared.contracts.envelope import MAX_VALUE_BYTES, DecodeError, KafkaRecord, decode, encode
from lastline_shared.contracts.examples import example_submissions
from lastline_shared.contracts.submissions import (
    CaseOpenedSubmission,
    VolunteerRegisteredSubmission,
    VolunteerWithdrawnSubmission,
)
from lastline_shared.contracts.topics import dlq_topic, rejections_topic, submissions_topic
from lastline_shared.kafka_admin import end_offsets
from tests.corpus import load
from tests.e2e.conftest import service_process, stop_all
from tests.e2e.test_intake_stream import (
    Intake,
    caught_up,
    cli,
    delete_topics,
    outbox_empty,
    read_between,
    until,
)
from tests.support.groups import start_service_at_end
from tests.support.kafka import header

pytestmark = pytest.mark.e2e


def _identity(record: KafkaRecord) -> tuple[str, str]:
    """How a rejection names the record: its ce_id if readable, else its key (the external id)."""
    item = decode(record.topic, record.key, list(record.headers), record.value)
    event_id = item.event_id if isinstance(item, DecodeError) else item.id
    if event_id is not None:
        return "event_id", event_id
    return "external_id", (record.key or b"").decode("utf-8", "replace")


def _valid_after(partner: str) -> list[Submission]:
    """Submissions that must still be accepted after the corpus."""
    examples = example_submissions(partner)
    hearing = network_today("America/New_York")() + timedelta(days=30)
    [volunteer] = [s for s in examples if isinstance(s, VolunteerRegisteredSubmission)]
    [case] = [s for s in examples if isinstance(s, CaseOpenedSubmission)]
    volunteer = volunteer.model_copy(
        update={"external_id": f"{partner}-after-vol", "email": f"after.{partner}@example.org"}
    )
    client = case.client.model_copy(update={"a_number": None})
    case = case.model_copy(
        update={"external_id": f"{partner}-after-case", "client": client, "next_hearing_date": hearing}
    )
    withdrawn = VolunteerWithdrawnSubmission(
        external_id=volunteer.external_id, reason=VolunteerWithdrawalReason.LEFT_NETWORK
    )
    return [volunteer, case, withdrawn]


async def _publish(bootstrap: str, records: list[KafkaRecord]) -> list[KafkaRecord]:
    """Sends ``records`` in order (one partition, idempotent: a retry never reorders); returns those
    the producer refused as too large."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    refused, sent = [], []
    try:
        for record in records:
            try:
                sent.append(
                    await producer.send(
                        record.topic, record.value, key=record.key, headers=list(record.headers)
                    )
                )
            except MessageSizeTooLargeError:
                refused.append(record)
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return refused


@pytest.mark.asyncio(loop_scope="session")
async def test_the_bad_input_corpus_is_rejected_and_the_consumer_carries_on(
    infra: InfraEndpoints, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    partner = f"corpus-{run}"
    service_name = f"intake-corpus-{run}"
    env = {
        "INTAKE_DB_SCHEMA": f"e2e_corpus_{run}",
        "INTAKE_DATABASE_URL": infra.database_url,  # the superuser's: the intake role may not create schemas
        "INTAKE_SERVICE_NAME": service_name,  # its own consumer group and inbox
        "INTAKE_TOPIC_PARTITIONS": "1",  # one partition: the valid submissions come after every bad one
        # The known failures are dead-lettered after their retries: keep those short.
        "INTAKE_CONSUMER_MAX_RETRIES": "1",
        "INTAKE_CONSUMER_RETRY_BACKOFF_S": "0.05",
    }
    bootstrap = infra.kafka_bootstrap
    topic = submissions_topic(partner)
    today = network_today("America/New_York")()
    corpus = load()
    bad = [case.record(partner, today, datetime.now(UTC)) for case in corpus]
    good = [encode(s, source=f"/partners/{partner}") for s in _valid_after(partner)]
    identities = [_identity(r) for r in bad]
    assert len(set(identities)) == len(identities), "each case must be told apart in the rejections"

    create = (
        "partners",
        "create",
        partner,
        "--name",
        "Corpus",
        "--kind",
        "clinic",
        "--email",
        "o@example.org",
    )
    # The group skips other runs' partner topics; this partner's topic, empty now, is read whole.
    await asyncio.gather(cli(*create, env=env), start_service_at_end(bootstrap, "intake", service_name))
    intake = service_process("intake", infra, tmp_path, **env)
    conn = await asyncpg.connect(infra.asyncpg_dsn)
    db = Intake(conn, env["INTAKE_DB_SCHEMA"], [partner])
    try:
        intake.start()
        await until(intake.ready, "intake ready", intake)
        refused = await _publish(bootstrap, bad + good)
        # Kafka itself refuses a value over 1 MiB (the broker's and producer's default limit), so
        # intake's own size check (payload_too_large) is for brokers configured larger and for HTTP.
        assert [len(r.value) > MAX_VALUE_BYTES for r in refused] == [True] * len(refused)
        assert {c.name for c, r in zip(corpus, bad, strict=True) if r in refused} == {"huge-body"}
        published = await end_offsets(bootstrap, [topic])
        assert sum(published.values()) == len(bad) - len(refused) + len(good)
        await until(lambda: caught_up(bootstrap, service_name, published), "all consumed", intake)
        await until(lambda: outbox_empty(db), "outbox drained", intake)
        assert intake.exit_code() is None, intake.log_tail()

        sent = [
            (case, record, ident)
            for case, record, ident in zip(corpus, bad, identities, strict=True)
            if record not in refused
        ]
        rejections = await read_between(
            bootstrap, {}, await end_offsets(bootstrap, [rejections_topic(partner)])
        )
        told = {}
        for record in rejections:
            assert header(record, "ce_type") == "submission-rejected"
            rejection = json.loads(record.value)
            key = (
                ("event_id", rejection["event_id"])
                if rejection["event_id"]
                else ("external_id", rejection["external_id"])
            )
            assert key not in told, f"two rejections for {key}"
            told[key] = rejection
        wrong: dict[str, tuple[object, list[str]]] = {}
        for case, _, ident in sent:
            rejection = told.pop(ident, None)
            codes = {r["code"] for r in rejection["reasons"]} if rejection else set()
            if case.outcome == "rejected" and not case.codes <= codes:
                wrong[case.name] = (sorted(case.codes), sorted(codes))
            elif case.outcome != "rejected" and rejection is not None:
                wrong[case.name] = ("not rejected: " + str(case.known_issue), sorted(codes))
        assert wrong == {}, wrong
        assert told == {}, "rejections of records that were not sent"

        mine = f"partner_id = '{partner}'"  # a slug: a-z, 0-9 and '-'
        rejected_ids = await db.ids(
            f"SELECT submission_id FROM {{s}}.submissions WHERE status = 'rejected' AND {mine}"
        )
        quarantined = await db.ids(f"SELECT submission_id FROM {{s}}.quarantine WHERE {mine}")
        expected_rejections = sum(1 for case, _, _ in sent if case.outcome == "rejected")
        assert len(quarantined) == len(rejected_ids) == expected_rejections
        assert quarantined == rejected_ids == {json.loads(r.value)["submission_id"] for r in rejections}

        # The consumer carried on: the known-accepted cases and everything after the corpus were accepted.
        good_ids = [str(_identity(r)[1]) for r in good]
        accepted_after = await conn.fetch(
            f'SELECT status FROM "{db.schema}".submissions WHERE partner_id = $1 AND event_id = ANY($2)',
            partner,
            good_ids,
        )
        assert sorted(row["status"] for row in accepted_after) == ["accepted"] * len(good)

        dead = await read_between(bootstrap, {}, await end_offsets(bootstrap, [dlq_topic(topic)]))
        dead_offsets = sorted(int(header(r, "dlq_original_offset") or -1) for r in dead)
        offsets = {
            id(record): offset for offset, record in enumerate(r for r in bad + good if r not in refused)
        }
        expected_dead = sorted(
            offsets[id(record)] for case, record, _ in sent if case.outcome == "dead_lettered"
        )
        assert dead_offsets == expected_dead, [
            case.name for case, r, _ in sent if offsets[id(r)] in dead_offsets
        ]
    finally:
        await stop_all([intake])
        await conn.execute(f'DROP SCHEMA IF EXISTS "{db.schema}" CASCADE')
        await conn.close()
        await delete_topics(bootstrap, [topic, rejections_topic(partner), dlq_topic(topic)])
