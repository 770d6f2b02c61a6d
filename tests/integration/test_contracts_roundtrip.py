"""Every event type through the one serialiser, a real broker, and back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from lastline_shared.contracts.envelope import Envelope, decode, encode
from lastline_shared.contracts.examples import example_events, example_submissions
from lastline_shared.contracts.topics import submissions_topic
from tests.support.kafka import create_topics, read_all, unique_topic

pytestmark = pytest.mark.integration


async def round_trip(bootstrap: str, topic: str, records: list[Any]) -> list[Envelope]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for r in records:
            await producer.send(topic, r.value, key=r.key, headers=list(r.headers))
        await producer.flush()
    finally:
        await producer.stop()
    received = await read_all(bootstrap, topic, expect=len(records))
    decoded = [decode(m.topic, m.key, m.headers, m.value) for m in received]
    problems = [d for d in decoded if not isinstance(d, Envelope)]
    assert not problems, problems
    return [d for d in decoded if isinstance(d, Envelope)]


async def test_every_internal_event_type_survives_a_real_broker(infra: Any) -> None:
    topic = unique_topic("roundtrip")
    await create_topics(infra.kafka_bootstrap, [topic], partitions=1)
    events = example_events()
    records = [encode(e, source="/services/test", topic=topic) for e in events]
    envelopes = await round_trip(infra.kafka_bootstrap, topic, records)
    assert [env.data for env in envelopes] == events  # one partition: order kept
    for env, record in zip(envelopes, records, strict=True):
        assert env.id == dict(record.headers)["ce_id"].decode()
        assert env.type == env.data.event_type
        assert env.subject == env.data.aggregate_id() == (record.key or b"").decode()
        assert env.traceparent is not None


async def test_every_partner_submission_type_survives_a_real_broker(infra: Any) -> None:
    partner = f"p{uuid.uuid4().hex[:8]}"
    topic = submissions_topic(partner)
    await create_topics(infra.kafka_bootstrap, [topic], partitions=1)
    submissions = example_submissions(partner)
    records = [encode(s, source=f"/partners/{partner}") for s in submissions]
    assert {r.topic for r in records} == {topic}
    envelopes = await round_trip(infra.kafka_bootstrap, topic, records)
    assert [env.data for env in envelopes] == submissions
    assert {env.source for env in envelopes} == {f"/partners/{partner}"}
