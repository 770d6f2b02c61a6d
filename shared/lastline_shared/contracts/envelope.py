"""CloudEvents 1.0 in the Kafka protocol binding's binary mode: the one place events become records.

A record carries the event's data as its JSON value and the CloudEvents attributes as ``ce_*``
headers, plus ``content-type`` and a W3C ``traceparent``; its key is the aggregate id, so the events of
one case (or volunteer) share a partition and stay in order.

:func:`decode` never raises on bad input: whatever arrives (not JSON, bad UTF-8, too large, too deep,
unknown type, missing headers, invalid data) comes back as a :class:`DecodeError` listing every problem
found as machine-readable :class:`Reason` values, so a consumer can reject or dead-letter the record
and carry on. Records on ``partner.<id>.submissions`` are read with the partner-facing models (with
client PII); everything else with the internal ones. Topics outside the registry (ad-hoc and test
topics) accept any internal event type.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from uuid import UUID, uuid4

from pydantic import ValidationError

from lastline_shared.contracts.base import Contract
from lastline_shared.contracts.catalog import INTERNAL_BY_TYPE, SUBMISSION_BY_TYPE
from lastline_shared.contracts.topics import ResolvedTopic, looks_like_partner_topic, resolve

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
MAX_VALUE_BYTES = 1024 * 1024
MAX_REASONS = 50
"""A record with more problems than this reports the first ones only."""

Headers = tuple[tuple[str, bytes], ...]

_SOURCE = re.compile(r"^/(services|partners)/([a-z0-9-]{2,40})$")
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
# CloudEvents forbids control characters in attribute values; PostgreSQL cannot store U+0000 in text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A JSON escape of U+0000 (not an escaped backslash followed by "u0000"): valid JSON, unstorable text.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_MESSAGE_LIMIT = 500


class DecodeCode(StrEnum):
    """Codes of problems found outside the data; data errors use pydantic's error types."""

    MISSING_VALUE = "missing_value"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    INVALID_ENCODING = "invalid_encoding"
    INVALID_JSON = "invalid_json"
    TOO_DEEPLY_NESTED = "too_deeply_nested"
    MISSING_HEADER = "missing_header"
    INVALID_HEADER = "invalid_header"
    DUPLICATE_HEADER = "duplicate_header"
    UNSUPPORTED_SPECVERSION = "unsupported_specversion"
    UNSUPPORTED_CONTENT_TYPE = "unsupported_content_type"
    UNSUPPORTED_DATASCHEMA = "unsupported_dataschema"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    EVENT_TYPE_NOT_ALLOWED = "event_type_not_allowed"
    UNKNOWN_TOPIC = "unknown_topic"
    SOURCE_MISMATCH = "source_mismatch"
    MISSING_KEY = "missing_key"
    KEY_MISMATCH = "key_mismatch"
    SUBJECT_MISMATCH = "subject_mismatch"
    PARTNER_MISMATCH = "partner_mismatch"
    TOO_MANY_ERRORS = "too_many_errors"


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What to produce: the topic, key, headers and value of one Kafka record."""

    topic: str
    key: bytes | None
    headers: Headers
    value: bytes


@dataclass(frozen=True, slots=True)
class Reason:
    """One problem: where (``client.a_number``, ``languages[0]``, ``headers.ce_id``, ``""`` for the
    whole value), a stable machine-readable code, and a message that never echoes the value."""

    path: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded record: the CloudEvents attributes and the validated event."""

    id: str
    source: str
    type: str
    subject: str | None
    time: datetime
    traceparent: str | None
    topic: str
    key: bytes | None
    headers: Headers
    data: Contract
    partner_id: str | None = None
    """The partner whose topic this came from (``partner.<id>.*`` topics)."""


@dataclass(frozen=True, slots=True)
class DecodeError:
    """A record that did not decode, as received, with every problem found."""

    topic: str
    key: bytes | None
    headers: Headers
    value: bytes | None
    reasons: tuple[Reason, ...]
    event_id: str | None = None
    """The ``ce_id`` if it could be read."""
    event_type: str | None = None
    """The ``ce_type`` if it could be read (possibly unknown)."""
    partner_id: str | None = None


# -- encoding ---------------------------------------------------------------------------------


def new_traceparent() -> str:
    """A fresh W3C trace context (sampled) for an event that starts a trace."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"


def format_time(time: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``."""
    return time.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode(
    event: Contract,
    *,
    source: str,
    event_id: UUID | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
    topic: str | None = None,
) -> KafkaRecord:
    """The Kafka record for ``event``. ``source`` is ``/services/<name>`` or ``/partners/<id>``.

    The topic defaults to the event's own; per-partner topics take the partner from the event's
    ``partner_id`` or else from a ``/partners/<id>`` source. Raises ``ValueError`` for what
    :func:`decode` would reject (a bad source or traceparent, a naive time, a wrong topic).
    """
    source_match = _SOURCE.match(source)
    if source_match is None:
        raise ValueError(f"invalid source {source!r}: expected /services/<name> or /partners/<id>")
    source_partner = source_match.group(2) if source_match.group(1) == "partners" else None
    if topic is None:
        spec = event.topic_spec()
        if spec.per_partner:
            partner_id = getattr(event, "partner_id", None) or source_partner
            if partner_id is None:
                raise ValueError(f"{event.event_type}: pass topic= or a /partners/<id> source")
            topic = spec.for_partner(partner_id)
        else:
            topic = spec.name
    resolved = resolve(topic)
    problems = [*_topic_problems(resolved, topic, event.event_type, type(event))]
    problems += _source_problems(resolved, source_match)
    topic_partner = resolved.partner_id if resolved is not None else None
    if topic_partner is not None and getattr(event, "partner_id", topic_partner) != topic_partner:
        problems.append(_reason("partner_id", DecodeCode.PARTNER_MISMATCH, "Not this partner's topic"))
    if problems:
        raise ValueError("; ".join(p.message for p in problems))
    if time is None:
        time = datetime.now(UTC)
    elif time.tzinfo is None:
        raise ValueError("time must be timezone-aware")
    if traceparent is None:
        traceparent = new_traceparent()
    elif not _TRACEPARENT.match(traceparent):
        raise ValueError(f"invalid traceparent {traceparent!r}")
    subject = event.aggregate_id()
    headers: Headers = (
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", str(event_id or uuid4()).encode()),
        ("ce_source", source.encode()),
        ("ce_type", event.event_type.encode()),
        ("ce_time", format_time(time).encode()),
        ("ce_subject", subject.encode()),
        ("ce_dataschema", event.dataschema().encode()),
        ("content-type", CONTENT_TYPE.encode()),
        ("traceparent", traceparent.encode()),
    )
    return KafkaRecord(
        topic=topic, key=subject.encode(), headers=headers, value=event.model_dump_json().encode()
    )


# -- decoding ---------------------------------------------------------------------------------

_KNOWN_HEADERS = frozenset(
    {
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_dataschema",
        "content-type",
        "traceparent",
    }
)
_REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time")


def _reason(path: str, code: str, message: str) -> Reason:
    return Reason(path, code, message[:_MESSAGE_LIMIT])


def _header_reason(name: str, code: DecodeCode, message: str) -> Reason:
    return _reason(f"headers.{name}", code, message)


def _clip(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def _topic_problems(
    resolved: ResolvedTopic | None, topic: str, event_type: str, model: type[Contract]
) -> list[Reason]:
    """Whether ``model`` may appear on ``topic`` (shared by encode and decode)."""
    if resolved is None:
        if looks_like_partner_topic(topic):
            return [_reason("topic", DecodeCode.UNKNOWN_TOPIC, "Not a valid partner topic name")]
        if model.partner_facing:
            message = "Submissions belong on partner topics"
            return [_reason("topic", DecodeCode.EVENT_TYPE_NOT_ALLOWED, message)]
        return []
    spec = resolved.spec
    if event_type not in spec.event_types or model.partner_facing != spec.partner_facing:
        message = f"Event type {_clip(event_type)!r} is not allowed on {spec.name!r}"
        return [_header_reason("ce_type", DecodeCode.EVENT_TYPE_NOT_ALLOWED, message)]
    return []


def _source_problems(resolved: ResolvedTopic | None, source: re.Match[str]) -> list[Reason]:
    """Partners write only their own submissions topic; everything else comes from services."""
    kind, name = source.group(1), source.group(2)
    if resolved is not None and resolved.spec.partner_facing:
        if kind != "partners" or name != resolved.partner_id:
            message = f"Submissions on this topic come from /partners/{resolved.partner_id}"
            return [_header_reason("ce_source", DecodeCode.SOURCE_MISMATCH, message)]
    elif kind != "services":
        message = "Events on this topic come from /services/<name>"
        return [_header_reason("ce_source", DecodeCode.SOURCE_MISMATCH, message)]
    return []


def _read_headers(headers: Headers, reasons: list[Reason]) -> dict[str, str]:
    """The CloudEvents attributes we know, each at most once, as text."""
    found: dict[str, str] = {}
    by_name = dict(headers)
    if len(by_name) == len(headers):  # the usual case: no repeated header, no need to track
        for name in _KNOWN_HEADERS.intersection(by_name):
            try:
                found[name] = by_name[name].decode("utf-8")
            except (UnicodeDecodeError, AttributeError):  # AttributeError: a null header value
                reasons.append(_header_reason(name, DecodeCode.INVALID_HEADER, "Not a UTF-8 string"))
        _drop_control_characters(headers, found, reasons)
        for name in _REQUIRED_HEADERS:
            if name not in by_name:
                message = "Required header missing"
                reasons.append(_header_reason(name, DecodeCode.MISSING_HEADER, message))
        return found
    seen: set[str] = set()
    for name, raw in headers:
        if name not in _KNOWN_HEADERS:
            continue  # other headers (extensions, dlq_*) are not ours to judge
        if name in seen:
            message = "Header appears more than once"
            reasons.append(_header_reason(name, DecodeCode.DUPLICATE_HEADER, message))
            found.pop(name, None)
            continue
        seen.add(name)
        try:
            found[name] = raw.decode("utf-8")
        except (UnicodeDecodeError, AttributeError):  # AttributeError: a null header value
            reasons.append(_header_reason(name, DecodeCode.INVALID_HEADER, "Not a UTF-8 string"))
    _drop_control_characters(headers, found, reasons)
    for name in _REQUIRED_HEADERS:
        if name not in seen:
            reasons.append(_header_reason(name, DecodeCode.MISSING_HEADER, "Required header missing"))
    return found


def _drop_control_characters(headers: Headers, found: dict[str, str], reasons: list[Reason]) -> None:
    """Reject control characters in header names and in the attributes read (never echoed)."""
    if any(_CONTROL.search(name) for name, _ in headers):
        reasons.append(_reason("headers", DecodeCode.INVALID_HEADER, "A header name has a control character"))
    for name in [name for name, text in found.items() if _CONTROL.search(text)]:
        del found[name]
        reasons.append(_header_reason(name, DecodeCode.INVALID_HEADER, "Has a control character"))


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(slots=True)
class _Attributes:
    event_id: str | None = None
    source: re.Match[str] | None = None
    time: datetime | None = None


def _read_attributes(found: dict[str, str], reasons: list[Reason]) -> _Attributes:
    attributes = _Attributes()
    specversion = found.get("ce_specversion")
    if specversion is not None and specversion != SPECVERSION:
        message = f"Only CloudEvents {SPECVERSION} is supported"
        reasons.append(_header_reason("ce_specversion", DecodeCode.UNSUPPORTED_SPECVERSION, message))
    if (raw_id := found.get("ce_id")) is not None:
        if _UUID.match(raw_id):
            attributes.event_id = raw_id.lower()
        else:
            reasons.append(_header_reason("ce_id", DecodeCode.INVALID_HEADER, "Not a UUID"))
    if (source := found.get("ce_source")) is not None:
        attributes.source = _SOURCE.match(source)
        if attributes.source is None:
            message = "Expected /services/<name> or /partners/<partner-id>"
            reasons.append(_header_reason("ce_source", DecodeCode.INVALID_HEADER, message))
    if (raw_time := found.get("ce_time")) is not None:
        attributes.time = _parse_time(raw_time)
        if attributes.time is None:
            message = "Not an RFC 3339 time with an offset"
            reasons.append(_header_reason("ce_time", DecodeCode.INVALID_HEADER, message))
    content_type = found.get("content-type")
    if content_type is not None and content_type.partition(";")[0].strip().lower() != CONTENT_TYPE:
        message = f"Expected {CONTENT_TYPE}"
        reasons.append(_header_reason("content-type", DecodeCode.UNSUPPORTED_CONTENT_TYPE, message))
    return attributes


def _pick_model(
    topic: str, resolved: ResolvedTopic | None, found: dict[str, str], reasons: list[Reason]
) -> type[Contract] | None:
    """The contract for this type on this topic: partner-facing on submissions topics."""
    event_type = found.get("ce_type")
    if resolved is None and looks_like_partner_topic(topic):
        reasons.append(_reason("topic", DecodeCode.UNKNOWN_TOPIC, "Not a valid partner topic name"))
        return None
    if event_type is None:
        return None
    partner_facing = resolved is not None and resolved.spec.partner_facing
    model: type[Contract] | None = (SUBMISSION_BY_TYPE if partner_facing else INTERNAL_BY_TYPE).get(
        event_type
    )
    if model is None:
        message = f"Unknown event type {_clip(event_type)!r}"
        reasons.append(_header_reason("ce_type", DecodeCode.UNKNOWN_EVENT_TYPE, message))
        return None
    problems = _topic_problems(resolved, topic, event_type, model)
    if problems:
        reasons += problems
        return None
    dataschema = found.get("ce_dataschema")
    if dataschema is not None and dataschema != model.dataschema():
        message = f"Expected {model.dataschema()}"
        reasons.append(_header_reason("ce_dataschema", DecodeCode.UNSUPPORTED_DATASCHEMA, message))
    return model


def _error_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _read_data(model: type[Contract] | None, value: bytes | None, reasons: list[Reason]) -> Contract | None:
    """The validated data: one pass of pydantic-core over the bytes, one reason per error."""
    if value is None:
        reasons.append(_reason("", DecodeCode.MISSING_VALUE, "The record has no value"))
        return None
    if len(value) > MAX_VALUE_BYTES:
        message = f"The value exceeds {MAX_VALUE_BYTES} bytes"
        reasons.append(_reason("", DecodeCode.PAYLOAD_TOO_LARGE, message))
        return None
    if model is None:
        return None
    if _JSON_NUL.search(value):
        message = "The value contains U+0000, which text fields cannot hold"
        reasons.append(_reason("", DecodeCode.INVALID_ENCODING, message))
        return None
    try:
        return model.model_validate_json(value)
    except ValidationError as error:
        for detail in error.errors(include_url=False, include_input=False):
            code, message = detail["type"], detail["msg"]
            if code == "json_invalid":
                code, message = _json_problem(message, value)
            reasons.append(_reason(_error_path(detail["loc"]), code, message))
        return None


def _json_problem(message: str, value: bytes) -> tuple[str, str]:
    if "recursion limit" in message:
        return DecodeCode.TOO_DEEPLY_NESTED, "The value is nested too deeply"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return DecodeCode.INVALID_ENCODING, "The value is not valid UTF-8"
    return DecodeCode.INVALID_JSON, message


def _check_identity(
    data: Contract,
    key: bytes | None,
    subject: str | None,
    partner_id: str | None,
    reasons: list[Reason],
) -> None:
    """Key and subject name the aggregate, and a partner's topic holds only its own records."""
    aggregate_id = data.aggregate_id()
    if key is None:
        reasons.append(_reason("key", DecodeCode.MISSING_KEY, "The record has no key"))
    elif key != aggregate_id.encode():
        message = f"The key must be the event's {data.key_field}"
        reasons.append(_reason("key", DecodeCode.KEY_MISMATCH, message))
    if subject is not None and subject != aggregate_id:
        message = f"The subject must be the event's {data.key_field}"
        reasons.append(_header_reason("ce_subject", DecodeCode.SUBJECT_MISMATCH, message))
    if partner_id is not None and getattr(data, "partner_id", partner_id) != partner_id:
        message = "Must be the partner whose topic this is"
        reasons.append(_reason("partner_id", DecodeCode.PARTNER_MISMATCH, message))


def decode(
    topic: str, key: bytes | None, headers: Sequence[tuple[str, bytes]], value: bytes | None
) -> Envelope | DecodeError:
    """The event in a consumed record, or every reason it is not one. Never raises on bad input."""
    header_tuple = tuple(headers)
    reasons: list[Reason] = []
    found = _read_headers(header_tuple, reasons)
    attributes = _read_attributes(found, reasons)
    resolved = resolve(topic)
    partner_id = resolved.partner_id if resolved is not None else None
    model = _pick_model(topic, resolved, found, reasons)
    unknown_partner_topic = resolved is None and looks_like_partner_topic(topic)
    if attributes.source is not None and not unknown_partner_topic:
        reasons += _source_problems(resolved, attributes.source)
    data = _read_data(model, value, reasons)
    subject = found.get("ce_subject")
    if data is not None:
        _check_identity(data, key, subject, partner_id, reasons)

    if (
        reasons
        or data is None
        or attributes.event_id is None
        or attributes.source is None
        or attributes.time is None
    ):
        if len(reasons) > MAX_REASONS:
            message = f"{len(reasons) - MAX_REASONS} more problems not listed"
            reasons = [*reasons[:MAX_REASONS], _reason("", DecodeCode.TOO_MANY_ERRORS, message)]
        event_type = found.get("ce_type")
        return DecodeError(
            topic=topic,
            key=key,
            headers=header_tuple,
            value=value,
            reasons=tuple(reasons),
            event_id=attributes.event_id,
            event_type=_clip(event_type, 200) if event_type is not None else None,
            partner_id=partner_id,
        )

    traceparent = found.get("traceparent")
    return _envelope(
        event_id=attributes.event_id,
        source=attributes.source.group(0),
        subject=subject,
        time=attributes.time,
        traceparent=traceparent,
        topic=topic,
        key=key,
        headers=header_tuple,
        data=data,
        partner_id=partner_id,
    )


def _envelope(
    *,
    event_id: str,
    source: str,
    subject: str | None,
    time: datetime,
    traceparent: str | None,
    topic: str,
    key: bytes | None,
    headers: Headers,
    data: Contract,
    partner_id: str | None,
) -> Envelope:
    """The decoded event, as both decoders build it."""
    if traceparent is not None and not _TRACEPARENT.match(traceparent):
        traceparent = None  # W3C: an invalid parent starts a new trace; not worth a rejection
    return Envelope(
        id=event_id,
        source=source,
        type=data.event_type,
        subject=subject,
        time=time,
        traceparent=traceparent,
        topic=topic,
        key=key,
        headers=headers,
        data=data,
        partner_id=partner_id,
    )


# -- the same, quicker for the usual record ------------------------------------------------------


@lru_cache(maxsize=1024)
def _route(
    topic: str, event_type: str, source: str, dataschema: str | None
) -> tuple[type[Contract], str | None] | None:
    """The model and partner of a record with these attributes if they pass every check of
    :func:`decode` that does not look at the data; None if any fails. Cached: records repeat them."""
    source_match = _SOURCE.match(source)
    resolved = resolve(topic)
    if source_match is None or (resolved is None and looks_like_partner_topic(topic)):
        return None
    found = {"ce_type": event_type}
    if dataschema is not None:
        found["ce_dataschema"] = dataschema
    reasons: list[Reason] = []
    model = _pick_model(topic, resolved, found, reasons)
    if model is None or reasons or _source_problems(resolved, source_match):
        return None
    return model, resolved.partner_id if resolved is not None else None


def decode_fast(
    topic: str, key: bytes | None, headers: Sequence[tuple[str, bytes]], value: bytes | None
) -> Envelope | DecodeError:
    """Exactly what :func:`decode` returns, about twice as fast for a well-formed record (replays).

    It makes the same checks with the per-topic ones cached and hands anything unusual (a repeated,
    missing, non-UTF-8 or non-canonical header, invalid data, a key that does not match) to
    :func:`decode`, which then finds the same result and every reason.
    """
    header_tuple = tuple(headers)
    by_name = dict(header_tuple)
    try:
        if (
            len(by_name) != len(header_tuple)
            or by_name["ce_specversion"] != b"1.0"
            or by_name.get("content-type", b"application/json") != b"application/json"
            or value is None
            or len(value) > MAX_VALUE_BYTES
            or _JSON_NUL.search(value)
            or any(_CONTROL.search(name) for name in by_name)
        ):
            return decode(topic, key, header_tuple, value)
        raw_id = by_name["ce_id"].decode()
        raw_time = by_name["ce_time"].decode()
        event_type = by_name["ce_type"].decode()
        source = by_name["ce_source"].decode()
        raw_subject = by_name.get("ce_subject")
        subject = None if raw_subject is None else raw_subject.decode()
        raw_schema = by_name.get("ce_dataschema")
        dataschema = None if raw_schema is None else raw_schema.decode()
        raw_parent = by_name.get("traceparent")
        traceparent = None if raw_parent is None else raw_parent.decode()
    except (KeyError, UnicodeDecodeError, AttributeError):  # AttributeError: a null header value
        return decode(topic, key, header_tuple, value)
    route = _route(topic, event_type, source, dataschema)
    time = _parse_time(raw_time)
    attributes = (raw_time, event_type, source, subject or "", dataschema or "", traceparent or "")
    if route is None or time is None or not _UUID.match(raw_id) or _CONTROL.search("".join(attributes)):
        return decode(topic, key, header_tuple, value)
    model, partner_id = route
    try:
        data = model.model_validate_json(value)
    except ValidationError:
        return decode(topic, key, header_tuple, value)
    aggregate_id = data.aggregate_id()
    if (
        key != aggregate_id.encode()
        or (subject is not None and subject != aggregate_id)
        or (partner_id is not None and getattr(data, "partner_id", partner_id) != partner_id)
    ):
        return decode(topic, key, header_tuple, value)
    return _envelope(
        event_id=raw_id.lower(),
        source=source,
        subject=subject,
        time=time,
        traceparent=traceparent,
        topic=topic,
        key=key,
        headers=header_tuple,
        data=data,
        partner_id=partner_id,
    )
