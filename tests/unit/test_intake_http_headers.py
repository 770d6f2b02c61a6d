"""How an HTTP request becomes the record decode() reads: CloudEvents binary and structured mode."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from lastline_intake.http_api import from_binary, from_structured, media_type
from lastline_shared.contracts.envelope import DecodeError, Envelope
from lastline_shared.contracts.examples import example_submissions
from lastline_shared.contracts.submissions import VolunteerRegisteredSubmission

PARTNER = "clinic-a"
NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
[REGISTRATION] = [s for s in example_submissions(PARTNER) if isinstance(s, VolunteerRegisteredSubmission)]
BODY = REGISTRATION.model_dump_json().encode()


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    base = {
        "ce-specversion": "1.0",
        "ce-id": str(uuid.uuid4()),
        "ce-type": "volunteer-registered",
        "content-type": "application/json",
        "authorization": "Bearer secret",
    }
    base.update({name.replace("_", "-"): value for name, value in values.items()})
    return [(name.encode(), value.encode()) for name, value in base.items() if value]


def _reasons(item: Envelope | DecodeError | None) -> list[tuple[str, str]]:
    assert isinstance(item, DecodeError), item
    return [(r.path, r.code) for r in item.reasons]


def test_binary_mode_maps_headers_and_fills_source_and_time() -> None:
    event_id = uuid.uuid4()
    item = from_binary(PARTNER, _headers(ce_id=str(event_id).upper()), BODY, NOW)
    assert isinstance(item, Envelope), item
    assert (item.id, item.type, item.source, item.time) == (
        str(event_id),
        "volunteer-registered",
        f"/partners/{PARTNER}",
        NOW,
    )
    assert (item.topic, item.partner_id, item.key) == (
        f"partner.{PARTNER}.submissions",
        PARTNER,
        REGISTRATION.external_id.encode(),
    )
    assert item.data == REGISTRATION
    assert all(name != "authorization" for name, _ in item.headers)  # only the event's headers


def test_binary_mode_keeps_what_the_partner_sent() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers = _headers(ce_time="2026-03-01T10:00:00-05:00", traceparent=traceparent)
    item = from_binary(PARTNER, headers, BODY, NOW)
    assert isinstance(item, Envelope), item
    assert item.time == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    assert item.traceparent == traceparent


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (_headers(ce_type=""), ("headers.ce-type", "missing_header")),
        (_headers(ce_id=""), ("headers.ce-id", "missing_header")),
        (_headers(ce_id="42"), ("headers.ce-id", "invalid_header")),
        (_headers(ce_specversion="0.3"), ("headers.ce-specversion", "unsupported_specversion")),
        (_headers(ce_type="volunteer-enlisted"), ("headers.ce-type", "unknown_event_type")),
        (_headers(ce_type="case-escalated"), ("headers.ce-type", "unknown_event_type")),
        (_headers(ce_source="/partners/firm-b"), ("headers.ce-source", "source_mismatch")),
        (_headers(ce_subject="someone-else"), ("headers.ce-subject", "subject_mismatch")),
        (_headers(ce_time="yesterday"), ("headers.ce-time", "invalid_header")),
        ([*_headers(), (b"ce-id", str(uuid.uuid4()).encode())], ("headers.ce-id", "duplicate_header")),
    ],
)
def test_binary_mode_header_problems_name_http_headers(
    headers: list[tuple[bytes, bytes]], expected: tuple[str, str]
) -> None:
    assert expected in _reasons(from_binary(PARTNER, headers, BODY, NOW))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "invalid_json"),
        (b'{"name": "Dana", ', "invalid_json"),
        (b"\xff\xfe{}", "invalid_encoding"),
        (b"[" * 1000 + b"]" * 1000, "too_deeply_nested"),
    ],
)
def test_binary_mode_bad_bodies_are_decode_reasons(body: bytes, code: str) -> None:
    item = from_binary(PARTNER, _headers(), body, NOW)
    assert [c for _, c in _reasons(item)] == [code]
    assert isinstance(item, DecodeError)
    assert item.key is None  # no external id to read


def test_a_non_string_external_id_is_a_data_reason_not_a_key_one() -> None:
    body = json.dumps({**json.loads(BODY), "external_id": 17}).encode()
    assert ("external_id", "string_type") in _reasons(from_binary(PARTNER, _headers(), body, NOW))


def _structured(**attributes: object) -> bytes:
    event: dict[str, object] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "type": "volunteer-registered",
        "data": json.loads(BODY),
    }
    event.update(attributes)
    return json.dumps({k: v for k, v in event.items() if v is not None}).encode()


def test_structured_mode_reads_the_attributes_and_data() -> None:
    item = from_structured(PARTNER, _structured(datacontenttype="application/json"), NOW)
    assert isinstance(item, Envelope), item
    assert (item.source, item.time, item.data) == (f"/partners/{PARTNER}", NOW, REGISTRATION)
    assert item.key == REGISTRATION.external_id.encode()


def test_structured_mode_problems_name_attributes() -> None:
    assert _reasons(from_structured(PARTNER, _structured(type=None), NOW)) == [("type", "missing_header")]
    assert ("id", "invalid_header") in _reasons(from_structured(PARTNER, _structured(id=7), NOW))
    assert _reasons(from_structured(PARTNER, _structured(data=None), NOW)) == [("data", "missing_value")]
    wrong = _structured(datacontenttype="text/plain")
    assert ("datacontenttype", "unsupported_content_type") in _reasons(from_structured(PARTNER, wrong, NOW))


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"data_base64": "e30="}', b""])
def test_structured_mode_needs_one_json_object(body: bytes) -> None:
    assert from_structured(PARTNER, body, NOW) is None


def test_media_type() -> None:
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    assert media_type(None) == ""
