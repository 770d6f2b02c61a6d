"""Logging: one pipeline for structlog and stdlib loggers, bound event context, PII redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import structlog
from pydantic import BaseModel, EmailStr, ValidationError

from lastline_shared.logging import (
    REDACTED,
    bind_event_context,
    configure_logging,
    get_logger,
    is_pii_key,
    redact,
    redact_text,
    trace_id_from_traceparent,
)
from lastline_shared.settings import IntakeSettings

# PII that must never reach a log line, in the shapes it arrives in.
NAME = "Maria Lopez"
A_NUMBER = "A123456789"
EMAIL = "maria.lopez@example.org"
PHONE = "+14045551234"
DOB = "1990-01-02"


class Stream(io.StringIO):
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


@pytest.fixture
def stream() -> Iterator[Stream]:
    """Logging configured to JSON into a buffer; the global configuration is restored after."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    buf = Stream()
    configure_logging(IntakeSettings(log_json=True, log_level="INFO"), stream=buf)
    yield buf
    root.handlers[:] = saved[1]
    root.setLevel(saved[0])
    logging.captureWarnings(False)
    structlog.reset_defaults()


def assert_no_pii(text: str) -> None:
    for secret in (NAME, "Maria", "Lopez", A_NUMBER, "123456789", EMAIL, PHONE, "4045551234", DOB):
        assert secret not in text, f"{secret!r} leaked into {text!r}"


# --- redaction of values and keys ----------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["name", "first_name", "lastName", "full-name", "client_name", "a_number", "alienNumber",
     "date_of_birth", "dob", "email", "phone", "client_email", "contact_phone", "EMAIL_ADDRESS",
     "birthDate", "volunteer_dob"],
)  # fmt: skip
def test_pii_keys_are_recognised(key: str) -> None:
    assert is_pii_key(key)


@pytest.mark.parametrize(
    "key",
    ["case_id", "event", "topic", "facility", "court", "service_name", "hostname", "type",
     "languages", "next_hearing_date", "detained_since", "topic_name"],
)  # fmt: skip
def test_ordinary_keys_are_kept(key: str) -> None:
    assert not is_pii_key(key)


def test_redact_nested_structures_at_any_depth() -> None:
    value: dict[str, Any] = {
        "case_id": "c-1",
        "client": {"first_name": "Maria", "last_name": "Lopez", "alien_number": A_NUMBER},
        "contacts": [{"email": EMAIL}, {"notes": f"call {PHONE} after 5"}],
        "history": ({"dob": DOB, "facility": "Stewart"},),
        "count": 3,
    }

    out = redact(value)

    assert out["case_id"] == "c-1"
    assert out["count"] == 3
    assert out["client"] == {
        "first_name": REDACTED,
        "last_name": REDACTED,
        "alien_number": REDACTED,
    }
    assert out["contacts"] == [{"email": REDACTED}, {"notes": f"call {REDACTED} after 5"}]
    assert out["history"] == [{"dob": REDACTED, "facility": "Stewart"}]
    assert value["client"]["first_name"] == "Maria"  # the caller's data is not modified


def test_redact_models_and_dataclasses_by_their_fields() -> None:
    class Client(BaseModel):
        full_name: str
        facility: str

    @dataclass
    class Contact:
        phone: str
        language: str

    out = redact([Client(full_name=NAME, facility="Stewart"), Contact(PHONE, "es")])

    assert out == [
        {"full_name": REDACTED, "facility": "Stewart"},
        {"phone": REDACTED, "language": "es"},
    ]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("client A123456789 transferred", "A123456789"),
        ("client A-123-456-789 transferred", "123-456-789"),
        ("client A# 12345678 (old format)", "12345678"),
        ("a-number 123456789 on file", "123456789"),
        ("ssn 123-45-6789", "123-45-6789"),
        ("write to maria.lopez+case@example.org today", "maria.lopez+case@example.org"),
        ("user_email=maria_lopez@example.org", "maria_lopez@example.org"),
        ("E.164 +14045551234.", "+14045551234"),
        ("UK +44 20 7946 0958", "20 7946 0958"),
        ("call (404) 555-1234", "555-1234"),
        ("call 404-555-1234", "404-555-1234"),
        ("call 404.555.1234", "404.555.1234"),
        ("call 1-404-555-1234", "404-555-1234"),
        ("call 4045551234", "4045551234"),
        ("born 1990-01-02 in Guatemala", "1990-01-02"),
        ("date of birth: 01/02/1990", "01/02/1990"),
        ("DOB 1990-01-02", "1990-01-02"),
        ("{'name': 'Maria Lopez', 'facility': 'Stewart'}", "Maria Lopez"),
        ('{"first_name": "Maria", "case_id": "c-1"}', "Maria"),
        ("client_name=Maria status=open", "Maria"),
        ("lastName: Lopez,", "Lopez"),
        ("1 validation error\n  input_value='Maria Lopez', input_type=str]", "Maria Lopez"),
    ],
)
def test_redact_text_removes_pii_inside_free_text(text: str, secret: str) -> None:
    out = redact_text(text)

    assert secret not in out
    assert REDACTED in out


@pytest.mark.parametrize(
    "text",
    [
        "case c-1 placed with volunteer v-9",
        "550e8400-e29b-41d4-a716-446655440000",
        "2024-05-01T12:00:00.123456+05:30",
        "handler took 0.123456789s",
        "offset=12345 partition=3 topic=cases",
        "postgresql+asyncpg://intake:intake@127.0.0.1:5432/lastline",
        "traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "next hearing 2024-06-01 at Atlanta Immigration Court",
        "hostname=broker-1 filename=server.properties",
        "trace a123456789b0c1d2e3f4a5b6c7d8e9f0 span 1234567890abcdef",
        "kafka 4.1.0 build 20250101123456",
    ],
)
def test_redact_text_keeps_ordinary_text(text: str) -> None:
    assert redact_text(text) == text


def test_redaction_stays_linear_on_long_unbroken_text() -> None:
    blob = "QUJD" * 50_000  # 200 kB of base64, e.g. a payload logged by mistake
    start = time.perf_counter()
    out = redact_text(blob + f" {EMAIL}")
    elapsed = time.perf_counter() - start

    assert out.endswith(REDACTED)
    assert elapsed < 0.5, f"{elapsed:.2f}s"


def test_redaction_is_cheap() -> None:
    event = {
        "event": "case opened by partner p-1 for facility stewart with 3 needs",
        "case_id": "0b8e7c1e-2f7a-4c43-9a51-0c1f5d3e9a10",
        "client": {"first_name": "Maria", "notes": ["interpreter", "A123456789"]},
        "offset": 1234,
    }
    start = time.perf_counter()
    for _ in range(5_000):
        redact(event)
    elapsed = time.perf_counter() - start

    assert elapsed < 1.5, f"5000 events took {elapsed:.2f}s"  # ~0.15 s here


# --- the configured pipeline ---------------------------------------------------------------


def test_structlog_lines_are_redacted_json(stream: Stream) -> None:
    get_logger("test").info(
        f"received case for {EMAIL}",
        client={"name": NAME, "ids": [A_NUMBER]},
        phone=PHONE,
        facility="Stewart",
    )

    [line] = stream.lines()
    assert line["event"] == f"received case for {REDACTED}"
    assert line["client"] == {"name": REDACTED, "ids": [REDACTED]}
    assert line["phone"] == REDACTED
    assert line["facility"] == "Stewart"
    assert line["level"] == "info"
    assert line["service"] == "intake"
    assert line["logger"] == "test"
    assert "timestamp" in line
    assert_no_pii(stream.getvalue())


def test_exception_messages_and_tracebacks_are_redacted(stream: Stream) -> None:
    def parse(raw: dict[str, str]) -> None:
        raise ValueError(f"bad submission for {raw['email']} / {raw['a_number']} / {raw['phone']}")

    try:
        parse({"email": EMAIL, "a_number": A_NUMBER, "phone": PHONE})
    except ValueError:
        get_logger("test").exception("submission rejected")

    [line] = stream.lines()
    assert "Traceback" in line["exception"]
    assert "ValueError: bad submission for" in line["exception"]
    assert_no_pii(stream.getvalue())


def test_pydantic_validation_errors_do_not_echo_the_input(stream: Stream) -> None:
    class Submission(BaseModel):
        email: EmailStr
        age: int

    try:
        Submission.model_validate({"email": "Maria Lopez", "age": DOB})
    except ValidationError:
        get_logger("intake").exception("invalid submission")

    [line] = stream.lines()
    assert "validation error" in line["exception"]
    assert_no_pii(stream.getvalue())


def test_stdlib_loggers_use_the_same_pipeline(stream: Stream) -> None:
    try:
        raise RuntimeError(f"lookup failed for {A_NUMBER}")
    except RuntimeError:
        logging.getLogger("aiokafka.consumer").exception("failed for %s", EMAIL)
    logging.getLogger("sqlalchemy.pool").warning("client %s", PHONE)

    first, second = stream.lines()
    assert first["logger"] == "aiokafka.consumer"
    assert first["level"] == "error"
    assert first["event"] == f"failed for {REDACTED}"
    assert "RuntimeError" in first["exception"]
    assert second["logger"] == "sqlalchemy.pool"
    assert second["service"] == "intake"
    assert_no_pii(stream.getvalue())


def test_other_root_handlers_receive_structlog_events_redacted(
    stream: Stream, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        get_logger("test").info("contact", email=EMAIL, notes=f"A-number {A_NUMBER}")

    [record] = caplog.records
    assert_no_pii(str(record.msg))
    assert "contact" in str(record.msg)


def test_loggers_with_own_handlers_are_routed_through_the_pipeline() -> None:
    private = io.StringIO()
    uvicorn = logging.getLogger("uvicorn.error")
    uvicorn.addHandler(logging.StreamHandler(private))
    uvicorn.propagate = False
    buf = Stream()
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        configure_logging(IntakeSettings(log_json=True), stream=buf)
        uvicorn.info("Started server process for %s", EMAIL)
    finally:
        root.handlers[:] = saved
        structlog.reset_defaults()

    assert private.getvalue() == ""
    [line] = buf.lines()
    assert line["logger"] == "uvicorn.error"
    assert line["event"] == f"Started server process for {REDACTED}"


def test_level_filtering_and_sql_statements_stay_quiet(stream: Stream) -> None:
    get_logger("test").debug("not shown")
    logging.getLogger("sqlalchemy.engine.Engine").info("INSERT ... ('Maria Lopez',)")
    get_logger("test").info("shown")

    assert [line["event"] for line in stream.lines()] == ["shown"]


def test_reconfiguring_replaces_the_handler(stream: Stream) -> None:
    second = Stream()
    configure_logging(IntakeSettings(log_json=True), stream=second)
    get_logger("test").info("once")

    assert stream.getvalue() == ""
    assert len(second.lines()) == 1


def test_console_output_when_asked_and_json_by_default_off_a_terminal() -> None:
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        console = io.StringIO()
        configure_logging(IntakeSettings(log_json=False), stream=console)
        get_logger("test").info("hello console", email=EMAIL)
        auto = Stream()  # StringIO is not a terminal: auto mode picks JSON
        configure_logging(IntakeSettings(), stream=auto)
        get_logger("test").info("hello json")
    finally:
        root.handlers[:] = saved
        structlog.reset_defaults()

    assert "hello console" in console.getvalue()
    assert EMAIL not in console.getvalue()
    assert console.getvalue().lstrip()[0] != "{"
    assert auto.lines()[0]["event"] == "hello json"


# --- bound context ---------------------------------------------------------------------------


def test_bind_event_context_adds_and_removes_fields(stream: Stream) -> None:
    log = get_logger("consumer")
    with bind_event_context(event_id="e-1", topic="cases", trace_id="t-1", partition=3):
        log.info("handling")
    log.info("idle")

    inside, outside = stream.lines()
    assert (inside["event_id"], inside["topic"], inside["trace_id"], inside["partition"]) == (
        "e-1",
        "cases",
        "t-1",
        3,
    )
    assert "event_id" not in outside
    assert "topic" not in outside


async def test_bound_context_is_per_task(stream: Stream) -> None:
    log = get_logger("consumer")

    async def handle(event_id: str) -> None:
        with bind_event_context(event_id=event_id, topic="cases"):
            await asyncio.sleep(0.01)
            log.info("handled", expected=event_id)

    await asyncio.gather(*(handle(f"e-{i}") for i in range(5)))

    lines = stream.lines()
    assert len(lines) == 5
    assert all(line["event_id"] == line["expected"] for line in lines)


def test_trace_id_from_traceparent() -> None:
    header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    assert trace_id_from_traceparent(header) == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_from_traceparent("garbage") is None
    assert trace_id_from_traceparent(None) is None
