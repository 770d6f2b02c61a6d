"""Malformed partner messages (``partner_messages/*.json``, one case a file) and how each becomes the
Kafka record a partner would publish on ``partner.<id>.submissions``.

A case file says what to send and what intake must make of it:

- ``description``: what is wrong, in words.
- The value, one of: ``base`` (a valid submission of that type from the contract examples, with
  ``set`` and ``delete`` applied to dotted paths such as ``client.a_number``), ``value`` (text;
  ``null`` for a tombstone), ``value_base64`` (raw bytes), or ``value_repeat`` (``head`` +
  ``item`` * ``times`` + ``tail``, for bodies too large or too deep to keep in a file).
  ``encoding`` (default ``utf-8``) encodes the text; ``truncate`` keeps the first bytes.
- ``event_type``: the ``ce_type`` (default: ``base``). The headers are the standard ones
  (``ce_specversion``, ``ce_id``, ``ce_source``, ``ce_type``, ``ce_time``, ``content-type``),
  changed by ``headers``: ``set`` (name to value), ``delete`` (names), ``append`` (``[name, value]``
  pairs, for repeated headers). A header value is text, ``{"base64": ...}`` or ``null`` (a Kafka
  header without a value).
- ``key``: the record key as text or ``null`` (default: the value's ``external_id``, else the file
  name).
- ``outcome``: ``rejected`` (the default), or for a known problem ``dead_lettered`` or ``accepted``,
  with ``known_issue`` saying why. ``expect``: the reason codes a rejection must include.

Text may hold ``{partner}`` (the partner id), ``{uuid}`` (a fresh UUID) and ``{today+N}`` /
``{today-N}`` (a date N days from intake's today): a case works for any partner on any day.
"""

from __future__ import annotations

import base64
import json
import re
import typing
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic_core.core_schema import ErrorType

from lastline_shared.contracts.envelope import CONTENT_TYPE, SPECVERSION, DecodeCode, KafkaRecord, format_time
from lastline_shared.contracts.examples import example_submissions
from lastline_shared.contracts.topics import submissions_topic

DIRECTORY = Path(__file__).parent / "partner_messages"
Outcome = Literal["rejected", "dead_lettered", "accepted"]

REASON_CODES = frozenset(
    {code.value for code in DecodeCode}
    | set(typing.get_args(ErrorType))  # the schema's errors are pydantic's error types
    | {
        # the contracts' own (lastline_shared.contracts.primitives)
        "control_character",
        "country_code",
        "date_in_future",
        "date_type",
        "datetime_type",
        "duplicate_items",
        "email",
        "language_code",
        "reason_required",
        "us_jurisdiction",
        # intake's rules and the records' state (lastline_intake.rules, .processing)
        "unknown_facility",
        "unknown_court",
        "hearing_in_past",
        "detained_since_in_future",
        "closed_on_in_future",
        "placeholder_a_number",
        "invalid_phone",
        "unknown_partner",
        "email_taken",
        "case_closed",
        "a_number_conflict",
        "held_expired",
    }
)
"""Every reason code intake may give: the envelope's, pydantic's error types (the schema), the
contracts' own and intake's rules and record states. A rejection names only these."""

_PLACEHOLDER = re.compile(r"\{(partner|uuid|today[+-]\d+)\}")
_SPEC_KEYS = frozenset(
    {
        "description",
        "base",
        "set",
        "delete",
        "value",
        "value_base64",
        "value_repeat",
        "encoding",
        "truncate",
        "event_type",
        "headers",
        "key",
        "outcome",
        "expect",
        "known_issue",
    }
)


@dataclass(frozen=True)
class CorpusCase:
    name: str
    description: str
    outcome: Outcome
    codes: frozenset[str]
    """Reason codes the rejection must include (empty unless ``outcome`` is ``rejected``)."""
    known_issue: str | None
    spec: dict[str, Any]

    def record(self, partner_id: str, today: date, now: datetime | None = None) -> KafkaRecord:
        """The record a partner publishes for this case (a fresh ``ce_id`` every call)."""
        fill = _Filler(partner_id, today)
        value, data = self._value(fill, partner_id, today)
        event_type = self.spec.get("event_type", self.spec.get("base"))
        headers = _headers(
            self.spec.get("headers", {}), event_type, partner_id, now or datetime.now(UTC), fill
        )
        if "key" in self.spec:
            key = None if self.spec["key"] is None else fill(self.spec["key"]).encode()
        elif isinstance(data, dict) and isinstance(data.get("external_id"), str):
            key = data["external_id"].encode()
        else:
            key = self.name.encode()
        return KafkaRecord(submissions_topic(partner_id), key, headers, value)  # type: ignore[arg-type]

    def _value(self, fill: _Filler, partner_id: str, today: date) -> tuple[bytes | None, Any]:
        spec = self.spec
        data: Any = None
        encoding = spec.get("encoding", "utf-8")
        if "base" in spec:
            data = _base(spec["base"], partner_id, self.name, today)
            for path in spec.get("delete", ()):
                _delete(data, path)
            for path, item in spec.get("set", {}).items():
                _set(data, path, fill(item))
            value: bytes | None = json.dumps(data, ensure_ascii=False).encode(encoding)
        elif "value_base64" in spec:
            value = base64.b64decode(spec["value_base64"])
        elif "value_repeat" in spec:
            parts = spec["value_repeat"]
            text = fill(parts["head"]) + parts["item"] * parts["times"] + fill(parts["tail"])
            value = text.encode(encoding)
        else:
            value = None if spec["value"] is None else fill(spec["value"]).encode(encoding)
        if value is not None and "truncate" in spec:
            value = value[: spec["truncate"]]
        return value, data


def load() -> list[CorpusCase]:
    """Every case of the corpus, by file name."""
    return [_case(path) for path in sorted(DIRECTORY.glob("*.json"))]


def _case(path: Path) -> CorpusCase:
    spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {sorted(unknown)}")
    outcome: Outcome = spec.get("outcome", "rejected")
    codes = frozenset(spec.get("expect", ()))
    if (outcome == "rejected") != bool(codes) or (outcome != "rejected") != ("known_issue" in spec):
        raise ValueError(f"{path.name}: a rejection names its codes; any other outcome, its known_issue")
    return CorpusCase(path.stem, spec["description"], outcome, codes, spec.get("known_issue"), spec)


class _Filler:
    """Fills the placeholders of strings, also inside lists and objects."""

    def __init__(self, partner_id: str, today: date) -> None:
        self.partner_id, self.today = partner_id, today

    def _one(self, match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "partner":
            return self.partner_id
        if token == "uuid":
            return str(uuid.uuid4())
        return (self.today + timedelta(days=int(token.removeprefix("today")))).isoformat()

    def __call__(self, item: Any) -> Any:
        if isinstance(item, str):
            return _PLACEHOLDER.sub(self._one, item)
        if isinstance(item, list):
            return [self(i) for i in item]
        if isinstance(item, dict):
            return {k: self(v) for k, v in item.items()}
        return item


@cache
def _examples(partner_id: str) -> dict[str, str]:
    return {s.event_type: s.model_dump_json() for s in example_submissions(partner_id)}


def _base(event_type: str, partner_id: str, name: str, today: date) -> dict[str, Any]:
    """A valid submission of ``event_type``, its ids unique to this case (so that no two cases touch
    one record), without an A-number (no merging), its hearing after ``today``."""
    data: dict[str, Any] = json.loads(_examples(partner_id)[event_type])
    data["external_id"] = f"{partner_id}-{name}"
    if "email" in data:
        data["email"] = f"{name}.{partner_id}@example.org"
    if "client" in data:
        data["client"]["a_number"] = None
        data["next_hearing_date"] = (today + timedelta(days=30)).isoformat()
    return data


def _parent(data: Any, path: str) -> tuple[Any, str | int]:
    """The object or list holding the dotted ``path`` (``client.a_number``, ``languages.0``), and
    the last name (or index) in it."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in path.split(".")]
    for part in parts[:-1]:
        data = data[part]
    return data, parts[-1]


def _set(data: Any, path: str, value: Any) -> None:
    parent, last = _parent(data, path)
    parent[last] = value


def _delete(data: Any, path: str) -> None:
    parent, last = _parent(data, path)
    del parent[last]


def _header_value(raw: Any, fill: _Filler) -> bytes | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return base64.b64decode(raw["base64"])
    return str(fill(raw)).encode()


def _headers(
    changes: dict[str, Any], event_type: str | None, partner_id: str, now: datetime, fill: _Filler
) -> tuple[tuple[str, bytes | None], ...]:
    standard: dict[str, bytes | None] = {
        "ce_specversion": SPECVERSION.encode(),
        "ce_id": str(uuid.uuid4()).encode(),
        "ce_source": f"/partners/{partner_id}".encode(),
        "ce_type": (event_type or "").encode(),
        "ce_time": format_time(now).encode(),
        "content-type": CONTENT_TYPE.encode(),
    }
    for name in changes.get("delete", ()):
        del standard[name]
    for name, raw in changes.get("set", {}).items():
        standard[name] = _header_value(raw, fill)
    appended = [(name, _header_value(raw, fill)) for name, raw in changes.get("append", ())]
    return (*standard.items(), *appended)
