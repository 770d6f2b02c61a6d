"""Structured logging for every service: structlog, one pipeline for structlog and stdlib loggers,
bound event context, and redaction of client PII from every line.

``configure_logging(settings)`` is called once at process start (again in tests, which replaces the
previous configuration). Both structlog loggers and stdlib loggers (uvicorn, aiokafka, faststream,
sqlalchemy, ...) pass the same processors (context, level, timestamp, exceptions rendered to text,
then PII redaction) and end in one handler on the root logger, rendered as JSON lines (not a
terminal) or console output. structlog events are redacted before they leave structlog, so another
handler on the root logger (an error tracker) gets them redacted too; stdlib records are redacted
by our handler's formatter only.

FastStream gives its own loggers a private handler; pass ``get_logger("faststream")`` as the
broker's and app's ``logger``. Run uvicorn with ``log_config=None`` so it keeps this configuration.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import logging
import re
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, Processor, WrappedLogger

from lastline_shared.settings import ServiceSettings

REDACTED = "[redacted]"

# --- Redaction --------------------------------------------------------------------------------

# PII field names, written snake_case; matching ignores case, "_" and "-" (so firstName matches).
_PII_KEY_WORDS = (
    "name", "first_name", "last_name", "middle_name", "full_name", "given_name", "family_name",
    "surname", "maiden_name", "legal_name", "preferred_name", "client_name", "display_name",
    "contact_name", "a_number", "alien_number", "alien_registration_number", "uscis_number",
    "date_of_birth", "dob", "birth_date", "birthdate", "birthday",
    "email", "email_address", "phone", "phone_number", "mobile", "telephone",
)  # fmt: skip
# Keys that end with one of these are PII too (client_email, contact_phone, volunteer_dob, ...).
_PII_KEY_SUFFIXES = (
    "email",
    "emailaddress",
    "phone",
    "phonenumber",
    "anumber",
    "aliennumber",
    "dateofbirth",
    "dob",
    "birthdate",
)
# Structural keys of every event dict: their values are text to scan, never PII fields themselves.
_STRUCTURAL_KEYS = frozenset({"event", "exception", "stack", "level", "logger", "timestamp"})
_LEADING_KEYS = ("timestamp", "level", "service", "logger", "event")
# What ProcessorFormatter carries through the chain (the LogRecord): not log content.
_PROCESSOR_META_KEYS = frozenset({"_record", "_from_structlog"})


def _normalise_key(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


_PII_KEYS = frozenset(_normalise_key(k) for k in _PII_KEY_WORDS)


def is_pii_key(key: str) -> bool:
    """Whether a mapping key names a PII field, whatever its case or separators."""
    norm = _normalise_key(key)
    return norm in _PII_KEYS or norm.endswith(_PII_KEY_SUFFIXES)


_DATE = r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}"
# A number ends where no word character, and no separator followed by a digit, comes next: so
# digits inside hex ids, versions or longer numbers are not taken for phones or A-numbers.
_END = r"(?!\w|[.-]\d)"

# Each pattern runs only on strings that contain the character it needs, and each starts a
# match only at the start of a word, so redaction stays linear and most strings skip most scans.

# key=value, "key": "value", key: value inside free text (repr of dicts, JSON, logfmt); the key
# is then judged like a mapping key.
_KEY_VALUE = re.compile(
    r"(?<![\w-])(?P<key>[A-Za-z][\w-]*)(?P<sep>[\"']?\s*[:=]\s*)"
    r"(?P<value>\"[^\"]*\"|'[^']*'|[^\s,;)}\]]+)"
)
# pydantic's ValidationError echoes the input: "input_value='Maria', input_type=str".
_PYDANTIC_INPUT = re.compile(r"(?P<key>input_value=).*?(?=, input_type=)")
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A date next to a birth word: "born 1990-01-02", "Date of birth: 01/02/1990".
_BIRTH_DATE = re.compile(rf"(?P<key>\b(?i:born|birth|birthday|dob)\b\D{{0,12}}?)(?:{_DATE})")
_BIRTH_WORDS = ("birth", "born", "dob")
_NUMBERS = re.compile(
    # cheap first test of each position: only a sign, a digit or "A" before a digit can start one
    r"(?=[+(]|\d|[Aa][\s#-]{0,2}\d)(?:"
    + "|".join(
        (
            # E.164 (+14045551234) and international numbers written with separators
            rf"(?<![\w+])\+[1-9](?:[\s.-]?\d){{6,14}}{_END}",
            # US: (404) 555-1234, 404-555-1234, 404.555.1234, 1-404-555-1234, 4045551234
            rf"(?<![\w.+-])(?:1[\s.-]?)?(?:\(\d{{3}}\)\s?|\d{{3}}[\s.-]?)\d{{3}}[\s.-]?\d{{4}}{_END}",
            # A-numbers: A123456789, A-123-456-789, A# 12345678; bare 9 digits (also SSNs)
            r"(?<![\w.])(?:[Aa][\s#-]{0,2}(?:\d{8,9}|\d{3}[\s-]\d{3}[\s-]\d{3})"
            rf"|\d{{9}}|\d{{3}}-\d{{3}}-\d{{3}}|\d{{3}}-\d{{2}}-\d{{4}}){_END}",
        )
    )
    + ")"
)
_DIGIT = re.compile(r"\d")


def _redact_key_value(match: re.Match[str]) -> str:
    if is_pii_key(match["key"]):
        return match["key"] + match["sep"] + REDACTED
    return match[0]


def redact_text(text: str) -> str:
    """``text`` with emails, phone numbers, A-numbers, birth dates and ``key=value`` PII removed."""
    if len(text) < 6:  # nothing shorter can be PII we recognise
        return text
    if "=" in text or ":" in text:
        text = _KEY_VALUE.sub(_redact_key_value, text)
        if "input_value=" in text:
            text = _PYDANTIC_INPUT.sub(r"\g<key>" + REDACTED, text)
    if "@" in text:
        text = _EMAIL.sub(REDACTED, text)
    if _DIGIT.search(text):
        lowered = text.lower()
        if any(word in lowered for word in _BIRTH_WORDS):
            text = _BIRTH_DATE.sub(r"\g<key>" + REDACTED, text)
        text = _NUMBERS.sub(REDACTED, text)
    return text


_SAFE_SCALARS = (
    bool,
    int,
    float,
    decimal.Decimal,
    uuid.UUID,
    dt.date,
    dt.time,
    dt.timedelta,
    enum.Enum,
    type(None),
)


def redact(value: Any) -> Any:
    """A copy of ``value`` with PII removed at any depth (keys by name, strings by pattern)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, _SAFE_SCALARS):
        return value
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_pii_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if isinstance(value, BaseModel):
        return redact(value.model_dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return redact(dataclasses.asdict(value))
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    # Anything else would be rendered with str()/repr() by the renderer: scan that text instead.
    return redact_text(str(value))


def redact_pii(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redact every key and value of the event dict.

    Runs after exceptions are rendered to text (``format_exc_info``), so tracebacks are covered.
    """
    # The usual keys come first so that lines read alike; the rest keep their order.
    ordered = {k: event_dict[k] for k in _LEADING_KEYS if k in event_dict}
    ordered.update(event_dict)
    return {key: _redact_entry(key, value) for key, value in ordered.items()}


def _redact_entry(key: str, value: Any) -> Any:
    if key in _PROCESSOR_META_KEYS:
        return value
    if key not in _STRUCTURAL_KEYS and is_pii_key(key):
        return REDACTED
    return redact(value)


# --- Configuration ----------------------------------------------------------------------------

# Loggers that install their own handlers: make them propagate to the root pipeline instead.
_FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "faststream.access")
# SQLAlchemy logs statement parameters (client PII without keys) at INFO: never let it.
_QUIET_LOGGERS = {"sqlalchemy.engine": logging.WARNING, "sqlalchemy.pool": logging.WARNING}


def _add_service(service: str) -> Processor:
    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def configure_logging(settings: ServiceSettings, *, stream: TextIO | None = None) -> None:
    """Route structlog and stdlib logging through one redacting pipeline to ``stream`` (stderr)."""
    stream = stream if stream is not None else sys.stderr
    as_json = settings.log_json if settings.log_json is not None else not stream.isatty()
    level = logging.getLevelNamesMapping()[settings.log_level]

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        _add_service(settings.service_name),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        # Tracebacks become text before redaction sees them.
        structlog.processors.format_exc_info,
        redact_pii,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(default=str)
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name("lastline")

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "lastline"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
        foreign.setLevel(logging.NOTSET)
    for name, quiet_level in _QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(quiet_level, level))
    logging.captureWarnings(True)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached, so that module-level loggers follow a later configure_logging (tests).
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **initial: Any) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name, **initial)
    return logger


@contextmanager
def bind_event_context(
    *,
    event_id: str | uuid.UUID | None = None,
    topic: str | None = None,
    trace_id: str | None = None,
    **extra: Any,
) -> Iterator[None]:
    """Bind the event being handled to every log line within the block (None values are skipped).

    Uses contextvars, so it is safe across concurrent asyncio tasks.
    """
    fields = {"event_id": event_id, "topic": topic, "trace_id": trace_id, **extra}
    bound = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in fields.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**bound):
        yield


def trace_id_from_traceparent(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` header (``00-<trace-id>-<span-id>-<flags>``)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
