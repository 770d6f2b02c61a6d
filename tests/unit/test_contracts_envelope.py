"""The CloudEvents Kafka binary-mode codec: round trips, and a DecodeError for every kind of bad input."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest

from lastline_shared.contracts import INTERNAL_EVENTS, PARTNER_SUBMISSIONS
from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.cases import CaseOpened
from lastline_shared.contracts.envelope import (
    MAX_REASONS,
    MAX_VALUE_BYTES,
    DecodeCode,
    DecodeError,
    Envelope,
    KafkaRecord,
    decode,
    decode_fast,
    encode,
)
from lastline_shared.contracts.examples import example_events, example_submissions
from lastline_shared.contracts.rejections import SubmissionRejected
from lastline_shared.contracts.submissions import CaseOpenedSubmission
from lastline_shared.contracts.topics import dlq_topic

SERVICE = "/services/intake"
PARTNER = "acme"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def case_event() -> CaseOpened:
    return next(e for e in example_events() if isinstance(e, CaseOpened))


def case_submission() -> CaseOpenedSubmission:
    return next(e for e in example_submissions(PARTNER) if isinstance(e, CaseOpenedSubmission))


def decoded(record: KafkaRecord) -> Envelope | DecodeError:
    return decode(record.topic, record.key, record.headers, record.value)


def ok(record: KafkaRecord) -> Envelope:
    result = decoded(record)
    assert isinstance(result, Envelope), result
    return result


def failed(result: Envelope | DecodeError) -> set[tuple[str, str]]:
    assert isinstance(result, DecodeError), result
    return {(r.path, r.code) for r in result.reasons}


def with_headers(record: KafkaRecord, **replace: bytes | None) -> KafkaRecord:
    """The record with headers replaced (None removes one); ``content_type`` means content-type."""
    names = {k.replace("content_type", "content-type"): v for k, v in replace.items()}
    headers = [(k, v) for k, v in record.headers if k not in names]
    headers += [(k, v) for k, v in names.items() if v is not None]
    return KafkaRecord(record.topic, record.key, tuple(headers), record.value)


def with_value(record: KafkaRecord, value: bytes) -> KafkaRecord:
    return KafkaRecord(record.topic, record.key, record.headers, value)


def with_data(record: KafkaRecord, change: Callable[[dict[str, Any]], None]) -> KafkaRecord:
    data = json.loads(record.value)
    change(data)
    return with_value(record, json.dumps(data).encode())


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("event", example_events(PARTNER), ids=lambda e: e.event_type)
def test_every_internal_event_round_trips(event: Contract) -> None:
    record = encode(event, source=SERVICE)
    envelope = ok(record)
    assert envelope.data == event
    assert type(envelope.data) is type(event)
    assert envelope.type == event.event_type
    assert record.key == event.aggregate_id().encode() == envelope.key
    assert envelope.subject == event.aggregate_id()
    assert envelope.source == SERVICE
    assert envelope.partner_id == (PARTNER if isinstance(event, SubmissionRejected) else None)


@pytest.mark.parametrize("submission", example_submissions(PARTNER), ids=lambda e: e.event_type)
def test_every_partner_submission_round_trips(submission: Contract) -> None:
    record = encode(submission, source=f"/partners/{PARTNER}")
    assert record.topic == f"partner.{PARTNER}.submissions"
    assert record.key == submission.aggregate_id().encode()
    envelope = ok(record)
    assert envelope.data == submission
    assert envelope.partner_id == PARTNER


def test_examples_cover_every_type() -> None:
    assert {type(e) for e in example_events()} == set(INTERNAL_EVENTS)
    assert {type(e) for e in example_submissions(PARTNER)} == set(PARTNER_SUBMISSIONS)


def test_encode_writes_the_cloudevents_binary_headers() -> None:
    event = case_event()
    event_id = UUID("8f3c2a1b-0d9e-4c7b-a6f5-e4d3c2b1a098")
    time = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    record = encode(event, source=SERVICE, event_id=event_id, time=time, traceparent=TRACEPARENT)
    assert record.topic == "cases"
    assert dict(record.headers) == {
        "ce_specversion": b"1.0",
        "ce_id": str(event_id).encode(),
        "ce_source": SERVICE.encode(),
        "ce_type": b"case-opened",
        "ce_time": b"2026-03-02T10:30:00Z",
        "ce_subject": str(event.case_id).encode(),
        "ce_dataschema": b"urn:lastline:case-opened:v1",
        "content-type": b"application/json",
        "traceparent": TRACEPARENT.encode(),
    }
    assert json.loads(record.value)["case_id"] == str(event.case_id)
    envelope = ok(record)
    assert (envelope.id, envelope.time, envelope.traceparent) == (str(event_id), time, TRACEPARENT)


def test_encode_starts_a_trace_when_none_is_given() -> None:
    first, second = (dict(encode(case_event(), source=SERVICE).headers) for _ in range(2))
    assert first["traceparent"] != second["traceparent"]
    assert ok(encode(case_event(), source=SERVICE)).traceparent is not None
    assert first["ce_id"] != second["ce_id"]


def test_encode_routes_rejections_to_the_partner_and_honours_an_explicit_topic() -> None:
    rejection = next(e for e in example_events(PARTNER) if isinstance(e, SubmissionRejected))
    assert encode(rejection, source=SERVICE).topic == f"partner.{PARTNER}.rejections"
    record = encode(case_event(), source=SERVICE, topic="test-topic")
    assert record.topic == "test-topic"
    assert isinstance(decoded(record), Envelope), "unregistered topics accept internal events"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "intake"}, "invalid source"),
        ({"source": SERVICE, "time": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"source": SERVICE, "traceparent": "not-a-trace"}, "traceparent"),
        ({"source": SERVICE, "topic": "matches"}, "not allowed"),
        ({"source": f"/partners/{PARTNER}"}, "/services/"),
    ],
)
def test_encode_refuses_what_decode_would_reject(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode(case_event(), **kwargs)


def test_encode_needs_a_partner_for_submissions() -> None:
    with pytest.raises(ValueError, match="/partners/<id>"):
        encode(case_submission(), source=SERVICE)
    with pytest.raises(ValueError, match="partner topics"):
        encode(case_submission(), source=f"/partners/{PARTNER}", topic="test-topic")


def test_encode_keeps_rejections_on_their_partners_topic() -> None:
    rejection = next(e for e in example_events(PARTNER) if isinstance(e, SubmissionRejected))
    with pytest.raises(ValueError, match="partner's topic"):
        encode(rejection, source=SERVICE, topic="partner.other.rejections")


def test_a_dead_lettered_record_still_decodes() -> None:
    record = encode(case_event(), source=SERVICE)
    extra = (("dlq_error", b"boom"), ("dlq_original_topic", b"cases"))
    dead = KafkaRecord(dlq_topic(record.topic), record.key, (*record.headers, *extra), record.value)
    assert ok(dead).data == case_event()


def test_an_invalid_traceparent_is_dropped_not_rejected() -> None:
    record = with_headers(encode(case_event(), source=SERVICE), traceparent=b"00-zz")
    assert ok(record).traceparent is None


def test_partner_case_ids_are_normalised() -> None:
    upper = "8F3C2A1B-0D9E-4C7B-A6F5-E4D3C2B1A098"
    record = with_headers(encode(case_event(), source=SERVICE), ce_id=upper.encode())
    assert ok(record).id == upper.lower()


# -- bad input: one DecodeError, with the right reasons -----------------------------------------


def internal() -> KafkaRecord:
    return encode(case_event(), source=SERVICE)


def partner() -> KafkaRecord:
    return encode(case_submission(), source=f"/partners/{PARTNER}")


def _set_client(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda data: data["client"].__setitem__(field, value)


BAD_RECORDS: dict[str, tuple[Callable[[], KafkaRecord], set[tuple[str, str]]]] = {
    "no value": (
        lambda: KafkaRecord("cases", internal().key, internal().headers, None),  # type: ignore[arg-type]
        {("", "missing_value")},
    ),
    "too large": (
        lambda: with_value(internal(), b" " * (MAX_VALUE_BYTES + 1)),
        {("", "payload_too_large")},
    ),
    "not json": (lambda: with_value(internal(), b"{not json"), {("", "invalid_json")}),
    "empty": (lambda: with_value(internal(), b""), {("", "invalid_json")}),
    "bad utf-8": (
        lambda: with_value(internal(), b'{"case_id": "\xff\xfe"}'),
        {("", "invalid_encoding")},
    ),
    "deeply nested": (
        lambda: with_value(internal(), b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"),
        {("", "too_deeply_nested")},
    ),
    "not an object": (lambda: with_value(internal(), b"[]"), {("", "model_type")}),
    "no type": (lambda: with_headers(internal(), ce_type=None), {("headers.ce_type", "missing_header")}),
    "no id": (lambda: with_headers(internal(), ce_id=None), {("headers.ce_id", "missing_header")}),
    "no source": (
        lambda: with_headers(internal(), ce_source=None),
        {("headers.ce_source", "missing_header")},
    ),
    "no time": (lambda: with_headers(internal(), ce_time=None), {("headers.ce_time", "missing_header")}),
    "no specversion": (
        lambda: with_headers(internal(), ce_specversion=None),
        {("headers.ce_specversion", "missing_header")},
    ),
    "old specversion": (
        lambda: with_headers(internal(), ce_specversion=b"0.3"),
        {("headers.ce_specversion", "unsupported_specversion")},
    ),
    "id not a uuid": (
        lambda: with_headers(internal(), ce_id=b"42"),
        {("headers.ce_id", "invalid_header")},
    ),
    "source malformed": (
        lambda: with_headers(internal(), ce_source=b"intake"),
        {("headers.ce_source", "invalid_header")},
    ),
    "time malformed": (
        lambda: with_headers(internal(), ce_time=b"yesterday"),
        {("headers.ce_time", "invalid_header")},
    ),
    "time without offset": (
        lambda: with_headers(internal(), ce_time=b"2026-03-02T10:30:00"),
        {("headers.ce_time", "invalid_header")},
    ),
    "header not utf-8": (
        lambda: with_headers(internal(), ce_type=b"\xff\xfe"),
        {("headers.ce_type", "invalid_header")},
    ),
    "null header": (
        lambda: KafkaRecord(
            "cases",
            internal().key,
            tuple((k, None if k == "ce_id" else v) for k, v in internal().headers),  # type: ignore[misc]
            internal().value,
        ),
        {("headers.ce_id", "invalid_header")},
    ),
    "duplicate header": (
        lambda: KafkaRecord(
            "cases", internal().key, (*internal().headers, ("ce_type", b"case-closed")), internal().value
        ),
        {("headers.ce_type", "duplicate_header")},
    ),
    "wrong content type": (
        lambda: with_headers(internal(), content_type=b"text/plain"),
        {("headers.content-type", "unsupported_content_type")},
    ),
    "future schema version": (
        lambda: with_headers(internal(), ce_dataschema=b"urn:lastline:case-opened:v2"),
        {("headers.ce_dataschema", "unsupported_dataschema")},
    ),
    "unknown type": (
        lambda: with_headers(internal(), ce_type=b"case-reopened"),
        {("headers.ce_type", "unknown_event_type")},
    ),
    "type not allowed on topic": (
        lambda: KafkaRecord("matches", internal().key, internal().headers, internal().value),
        {("headers.ce_type", "event_type_not_allowed")},
    ),
    "internal event from a partner": (
        lambda: with_headers(internal(), ce_source=b"/partners/acme"),
        {("headers.ce_source", "source_mismatch")},
    ),
    "submission from another partner": (
        lambda: with_headers(partner(), ce_source=b"/partners/other"),
        {("headers.ce_source", "source_mismatch")},
    ),
    "submission from a service": (
        lambda: with_headers(partner(), ce_source=b"/services/intake"),
        {("headers.ce_source", "source_mismatch")},
    ),
    "malformed partner topic": (
        lambda: KafkaRecord("partner.ACME.submissions", partner().key, partner().headers, partner().value),
        {("topic", "unknown_topic")},
    ),
    "no key": (
        lambda: KafkaRecord("cases", None, internal().headers, internal().value),
        {("key", "missing_key")},
    ),
    "wrong key": (
        lambda: KafkaRecord("cases", b"someone-else", internal().headers, internal().value),
        {("key", "key_mismatch")},
    ),
    "wrong subject": (
        lambda: with_headers(internal(), ce_subject=b"someone-else"),
        {("headers.ce_subject", "subject_mismatch")},
    ),
    "rejection for another partner": (
        lambda: KafkaRecord(
            "partner.other.rejections",
            encode(example_events(PARTNER)[-1], source=SERVICE).key,
            encode(example_events(PARTNER)[-1], source=SERVICE).headers,
            encode(example_events(PARTNER)[-1], source=SERVICE).value,
        ),
        {("partner_id", "partner_mismatch")},
    ),
    "bad a-number": (
        lambda: with_data(partner(), _set_client("a_number", "A-201-234-567")),
        {("client.a_number", "string_pattern_mismatch")},
    ),
    "bad language": (
        lambda: with_data(partner(), lambda d: d.update(languages=["es", "klingon"])),
        {("languages[1]", "string_pattern_mismatch")},
    ),
    "missing field": (
        lambda: with_data(partner(), lambda d: d.pop("court_code")),
        {("court_code", "missing")},
    ),
    "client pii on an internal topic": (
        lambda: with_data(internal(), lambda d: d.update(client={"given_name": "Jane"})),
        {("client", "extra_forbidden")},
    ),
}


@pytest.mark.parametrize("case", BAD_RECORDS, ids=str)
def test_bad_input_gives_a_decode_error_with_the_right_reasons(case: str) -> None:
    build, expected = BAD_RECORDS[case]
    assert failed(decoded(build())) == expected


def test_a_decode_error_keeps_the_record_and_what_could_be_read() -> None:
    record = with_data(partner(), _set_client("a_number", "nope"))
    result = decoded(record)
    assert isinstance(result, DecodeError)
    assert (result.topic, result.key, result.headers, result.value) == (
        record.topic,
        record.key,
        record.headers,
        record.value,
    )
    assert result.event_id == dict(record.headers)["ce_id"].decode()
    assert result.event_type == "case-opened"
    assert result.partner_id == PARTNER


def test_every_problem_is_reported_at_once() -> None:
    record = with_headers(
        with_data(partner(), lambda d: d.pop("court_code")), ce_time=None, content_type=b"text/xml"
    )
    assert failed(decoded(record)) == {
        ("headers.ce_time", DecodeCode.MISSING_HEADER),
        ("headers.content-type", DecodeCode.UNSUPPORTED_CONTENT_TYPE),
        ("court_code", "missing"),
    }


def test_reasons_are_capped() -> None:
    record = with_data(internal(), lambda d: d.update({f"extra_{i}": i for i in range(200)}))
    result = decoded(record)
    assert isinstance(result, DecodeError)
    assert len(result.reasons) == MAX_REASONS + 1
    assert result.reasons[-1].code == DecodeCode.TOO_MANY_ERRORS


def test_reasons_never_echo_the_submitted_values() -> None:
    secret = "Zyxwvutsrqp"
    record = with_data(partner(), _set_client("a_number", secret))
    record = with_data(record, _set_client("date_of_birth", secret))
    result = decoded(record)
    assert isinstance(result, DecodeError)
    assert len(result.reasons) == 2
    assert not any(secret in r.message or secret in r.path for r in result.reasons)


def test_decode_never_raises_on_mangled_records() -> None:
    rng = random.Random(20260302)
    originals = [encode(e, source=SERVICE) for e in example_events()] + [partner()]
    outcomes = {Envelope: 0, DecodeError: 0}
    for _ in range(1500):
        record = rng.choice(originals)
        value = bytearray(record.value)
        for _ in range(rng.randint(1, 4)):
            value[rng.randrange(len(value))] = rng.randrange(256)
        headers = list(record.headers)
        if rng.random() < 0.3:
            index = rng.randrange(len(headers))
            headers[index] = (headers[index][0], bytes(rng.randrange(256) for _ in range(8)))
        key = record.key if rng.random() < 0.9 else rng.randbytes(4)
        result = decode(record.topic, key, headers, bytes(value))
        outcomes[type(result)] += 1
        if isinstance(result, DecodeError):
            assert result.reasons
            assert all(r.code and len(r.message) <= 500 for r in result.reasons)
    assert outcomes[DecodeError] > 0


def test_decoding_is_cheap_enough_to_loop_over() -> None:
    record = internal()
    results = [decoded(record) for _ in range(2000)]
    assert all(isinstance(r, Envelope) for r in results)


# -- decode_fast: the same results, sooner -------------------------------------------------------


def _both(record: KafkaRecord) -> Envelope | DecodeError:
    expected = decode(record.topic, record.key, record.headers, record.value)
    assert decode_fast(record.topic, record.key, record.headers, record.value) == expected
    return expected


def test_decode_fast_equals_decode_for_every_event_and_submission() -> None:
    records = [encode(e, source=SERVICE) for e in example_events(PARTNER)]
    records += [encode(s, source=f"/partners/{PARTNER}") for s in example_submissions(PARTNER)]
    assert all(isinstance(_both(r), Envelope) for r in records)


@pytest.mark.parametrize("case", BAD_RECORDS, ids=str)
def test_decode_fast_equals_decode_for_bad_input(case: str) -> None:
    build, _expected = BAD_RECORDS[case]
    assert isinstance(_both(build()), DecodeError)


@pytest.mark.parametrize(
    "change",
    [
        {"ce_id": b"4BF92F35-77B3-4DA6-A3CE-929D0E0E4736"},  # upper case: accepted, lowered
        {"content_type": b"application/json; charset=utf-8"},
        {"content_type": None},
        {"ce_subject": None},
        {"ce_dataschema": None},
        {"traceparent": b"not a trace"},
        {"traceparent": None},
        {"ce_time": b"2026-03-01T12:00:00+02:00"},
        {"x-extension": b"\xff"},
    ],
    ids=str,
)
def test_decode_fast_equals_decode_for_unusual_but_valid_headers(change: dict[str, bytes | None]) -> None:
    assert isinstance(_both(with_headers(internal(), **change)), Envelope)


def test_decode_fast_equals_decode_on_mangled_records() -> None:
    rng = random.Random(20261206)
    originals = [encode(e, source=SERVICE) for e in example_events()] + [partner()]
    outcomes: dict[type, int] = {Envelope: 0, DecodeError: 0}
    for _ in range(1000):
        record = rng.choice(originals)
        value = bytearray(record.value)
        for _ in range(rng.randint(0, 3)):
            value[rng.randrange(len(value))] = rng.randrange(256)
        headers = list(record.headers)
        if rng.random() < 0.3:
            index = rng.randrange(len(headers))
            headers[index] = (headers[index][0], bytes(rng.randrange(256) for _ in range(8)))
        if rng.random() < 0.1:
            headers.append(rng.choice(headers))
        key = record.key if rng.random() < 0.9 else rng.randbytes(4)
        outcomes[type(_both(KafkaRecord(record.topic, key, tuple(headers), bytes(value))))] += 1
    assert outcomes[Envelope] > 0
    assert outcomes[DecodeError] > 0
