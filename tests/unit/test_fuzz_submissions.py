"""Bad input, fuzzed: whatever a partner publishes, :func:`decode` and intake's decision step
(``SubmissionProcessor._decide``, run in memory as a batch would run it) either accept it or reject it
with machine-readable reasons from the documented set, and never raise; valid submissions are
accepted. The malformed corpus (``tests/corpus``) gets the reasons each of its files names.

The decision step is driven without a database: a processor over unbound tables and a batch's
in-memory state (``_Work``) holding what ``_load`` would have loaded (here: the partners).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka.message import KafkaAckableMessage
from faststream.kafka.parser import AioKafkaBatchParser
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lastline_intake import rules
from lastline_intake.decisions import Decision, Received
from lastline_intake.partners import PartnerRepository
from lastline_intake.pii import Keyring, generate_key
from lastline_intake.processing import SubmissionProcessor, _Work
from lastline_intake.simulate import simulate
from lastline_intake.tables import IntakeTables
from lastline_shared.clock import network_today
from lastline_shared.contracts import envelope as envelope_module
from lastline_shared.contracts.catalog import SUBMISSION_BY_TYPE
from lastline_shared.contracts.envelope import (
    MAX_REASONS,
    DecodeError,
    Envelope,
    KafkaRecord,
    decode,
    encode,
)
from lastline_shared.contracts.examples import example_submissions
from lastline_shared.contracts.rejections import SubmissionRejected
from lastline_shared.contracts.topics import rejections_topic, submissions_topic
from lastline_shared.contracts.volunteers import VolunteerRegistered
from lastline_shared.db import new_metadata
from lastline_shared.outbox import Outbox, outbox_table
from lastline_shared.subscriber import _tolerant_parser
from tests.corpus import REASON_CODES as DOCUMENTED_CODES
from tests.corpus import CorpusCase, load

PARTNER, OTHER = "fuzz-clinic", "fuzz-firm"
TOPIC = submissions_topic(PARTNER)
TODAY = network_today("America/New_York")()  # intake's today, as the corpus's dates assume

# Bounded so that the whole file runs in seconds on a loaded 2-core machine.
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,  # no .hypothesis/ in the checkout; a failure prints its seed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CORPUS = load()


# -- the decision step without a database ---------------------------------------------------------


@cache
def processor() -> SubmissionProcessor:
    metadata = new_metadata()
    return SubmissionProcessor(
        IntakeTables(metadata),
        PartnerRepository(metadata),
        Outbox(outbox_table(metadata), "fuzz"),
        Keyring.from_settings({"k1": generate_key()}, "k1"),
        b"fuzz-blind-index-key-32-bytes!!!",
        today=lambda: TODAY,
    )


def new_work() -> _Work:
    return _Work(now=datetime.now(UTC), today=TODAY, partners={PARTNER, OTHER})


def decide(item: Envelope | DecodeError, work: _Work | None = None) -> tuple[Decision, _Work]:
    """What intake decides about one decoded record, and the batch state with what it would write."""
    work = work or new_work()
    submission_id = uuid4()
    processor()._decide(work, submission_id, Received(item, "kafka", work.now))
    return work.decisions[submission_id], work


def decide_record(record: KafkaRecord) -> tuple[Decision, _Work]:
    return decide(decode(record.topic, record.key, list(record.headers), record.value))


def check_rejection(decision: Decision, work: _Work) -> set[str]:
    """A rejection as partners and staff get it; returns its codes."""
    assert decision.status == "rejected"
    assert decision.reasons
    codes = {reason.code for reason in decision.reasons}
    assert codes <= DOCUMENTED_CODES, codes - DOCUMENTED_CODES
    assert all(reason.message.strip() for reason in decision.reasons)
    [row] = [r for r in work.quarantine_rows if r["submission_id"] == decision.submission_id]
    assert [r["code"] for r in row["reasons"]] == [r.code for r in decision.reasons]
    # The partner is told on its rejections topic with an event any consumer can decode.
    [told] = [r for r in work.records if r.topic == rejections_topic(PARTNER)]
    event = decode(told.topic, told.key, list(told.headers), told.value)
    assert isinstance(event, Envelope), event
    assert isinstance(event.data, SubmissionRejected)
    assert event.data.submission_id == decision.submission_id
    assert {r.code for r in event.data.reasons} == codes
    return codes


def nul_in(value: Any) -> bool:
    """Whether U+0000 is in any text of ``value``: PostgreSQL refuses it in text and jsonb."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(nul_in(k) or nul_in(v) for k, v in value.items())
    if isinstance(value, list | tuple | set):
        return any(nul_in(v) for v in value)
    return False


def storable(work: _Work) -> bool:
    """Whether PostgreSQL takes what the batch writes in text and jsonb columns."""
    decisions = [
        (d.event_type, d.external_id, [(r.path, r.message) for r in d.reasons])
        for d in work.decisions.values()
    ]
    rows = [(row["reasons"], row["headers"]) for row in work.quarantine_rows]
    profiles = [v.profile for v in work.volunteers.values()] + [c.facts for c in work.cases.values()]
    return not nul_in([decisions, rows, profiles])


# -- the corpus -----------------------------------------------------------------------------------


def test_corpus_covers_the_kinds_of_bad_input() -> None:
    assert len(CORPUS) >= 100
    rejected = Counter(code for case in CORPUS for code in case.codes)
    for code in (
        "invalid_json",
        "invalid_encoding",
        "control_character",
        "payload_too_large",
        "too_deeply_nested",
        "missing_header",
        "duplicate_header",
        "invalid_header",
        "unsupported_specversion",
        "unsupported_content_type",
        "unknown_event_type",
        "source_mismatch",
        "missing_key",
        "missing_value",
        "unknown_facility",
        "unknown_court",
        "language_code",
        "placeholder_a_number",
        "string_pattern_mismatch",
        "date_from_datetime_parsing",
        "greater_than_equal",
        "extra_forbidden",
        "missing",
    ):
        assert rejected[code], f"no corpus case rejected with {code}"
    assert set().union(*(case.codes for case in CORPUS)) <= DOCUMENTED_CODES


@pytest.mark.parametrize("case", [c for c in CORPUS if c.outcome == "rejected"], ids=lambda c: c.name)
def test_corpus_case_is_rejected_with_its_reasons(case: CorpusCase) -> None:
    decision, work = decide_record(case.record(PARTNER, TODAY))

    codes = check_rejection(decision, work)
    assert case.codes <= codes, (case.description, decision.reasons)
    assert storable(work)
    assert not [r for r in work.records if r.topic in ("cases", "volunteers")]  # nothing published


@pytest.mark.parametrize("case", [c for c in CORPUS if c.outcome != "rejected"], ids=lambda c: c.name)
def test_corpus_known_issues_are_still_there(case: CorpusCase) -> None:
    """The corpus's known issues, as they are now: this fails once one is fixed, so that its file
    is updated to expect a rejection (see each file's ``known_issue``)."""
    decision, work = decide_record(case.record(PARTNER, TODAY))

    if case.outcome == "accepted":
        assert (decision.status, decision.result) == ("accepted", "created")
    else:  # dead_lettered: decided in memory, refused by PostgreSQL
        assert not storable(work), case.known_issue


# -- arbitrary records ----------------------------------------------------------------------------

# The attributes decode reads, in a fixed order for hypothesis.
_KNOWN_HEADERS = tuple(sorted(envelope_module._KNOWN_HEADERS))
_PLAUSIBLE_VALUES = (
    b"1.0",
    b"0.3",
    str(uuid4()).encode(),
    f"/partners/{PARTNER}".encode(),
    f"/partners/{OTHER}".encode(),
    b"/services/intake",
    b"2026-03-02T10:30:00Z",
    b"application/json",
    *(t.encode() for t in SUBMISSION_BY_TYPE),
    b"match-proposed",
)
header_names = st.one_of(st.sampled_from(_KNOWN_HEADERS), st.text(max_size=20))
header_values = st.one_of(st.none(), st.sampled_from(_PLAUSIBLE_VALUES), st.binary(max_size=60))
headers = st.lists(st.tuples(header_names, header_values), max_size=12)
topics = st.one_of(
    st.just(TOPIC),
    st.sampled_from(
        [submissions_topic(OTHER), "cases", "volunteers", "partner.x.submissions", f"{TOPIC}.dlq"]
    ),
    st.text(max_size=60),
)


def check_decode_result(result: Envelope | DecodeError) -> None:
    if isinstance(result, Envelope):
        return
    assert result.reasons, "a record that did not decode names why"
    assert len(result.reasons) <= MAX_REASONS + 1
    for reason in result.reasons:
        assert reason.code in DOCUMENTED_CODES, reason
        assert isinstance(reason.path, str)
        assert 0 < len(reason.message) <= 500


@FUZZ
@given(
    topic=topics,
    key=st.one_of(st.none(), st.binary(max_size=40)),
    headers=headers,
    value=st.one_of(st.none(), st.binary(max_size=400)),
)
@example(topic=TOPIC, key=None, headers=[], value=None)
@example(topic=TOPIC, key=b"k", headers=[("ce_type", None)] * 2, value=b"\x00")
def test_decode_rejects_arbitrary_bytes_with_reasons(
    topic: str, key: bytes | None, headers: list[tuple[str, bytes | None]], value: bytes | None
) -> None:
    check_decode_result(decode(topic, key, headers, value))  # type: ignore[arg-type]


@FUZZ
@given(
    key=st.one_of(st.none(), st.binary(max_size=40)),
    headers=headers,
    value=st.one_of(st.none(), st.binary(max_size=400)),
)
def test_intake_rejects_arbitrary_records_with_reasons(
    key: bytes | None, headers: list[tuple[str, bytes | None]], value: bytes | None
) -> None:
    decision, work = decide(decode(TOPIC, key, headers, value))  # type: ignore[arg-type]

    check_rejection(decision, work)


# FastStream parses a batch before our processor sees it: a header it cannot read must not lose the
# batch (shared/lastline_shared/subscriber.py, _tolerant_parser).
record_headers = st.lists(st.tuples(header_names, st.one_of(st.none(), st.binary(max_size=20))), max_size=6)


@FUZZ
@given(batch=st.lists(record_headers, min_size=1, max_size=4))
@example(batch=[[("ce_id", b"\xff\xfe")], [("ce_type", None)]])  # found by the corpus: lost a whole batch
def test_faststream_parses_any_batch_and_hands_over_the_records_untouched(
    batch: list[list[tuple[str, bytes | None]]],
) -> None:
    records = tuple(
        ConsumerRecord(TOPIC, 0, offset, 0, 0, b"k", b"{}", None, 1, 2, headers)
        for offset, headers in enumerate(batch)
    )
    parser = AioKafkaBatchParser(msg_class=KafkaAckableMessage, regex=None)

    message = asyncio.run(_tolerant_parser(records, parser.parse_batch))

    assert message.raw_message is records


# -- JSON-ish values: valid submissions with parts replaced -----------------------------------------

# U+0000 is left out here: PostgreSQL refuses it (see test_nul_is_rejected_before_storage).
_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=30)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT
    | st.sampled_from(
        ["", " ", "STWRTGA", "spa", "2026-03-16", "A201234567", "<script>", "'; DROP TABLE cases;--"]
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


@cache
def _valid(event_type: str) -> dict[str, Any]:
    submission = next(s for s in example_submissions(PARTNER) if s.event_type == event_type)
    data: dict[str, Any] = json.loads(submission.model_dump_json())
    if "next_hearing_date" in data:
        data["next_hearing_date"] = TODAY.replace(year=TODAY.year + 1).isoformat()
    return data


def _paths(data: Any, prefix: tuple[str | int, ...] = ()) -> Iterable[tuple[str | int, ...]]:
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for name, value in items:
        yield (*prefix, name)
        yield from _paths(value, (*prefix, name))


@st.composite
def mutated_submissions(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid submission with a few values replaced, removed or added."""
    event_type = draw(st.sampled_from(sorted(SUBMISSION_BY_TYPE)))
    data = json.loads(json.dumps(_valid(event_type)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        if not paths:
            break
        *parents, last = draw(st.sampled_from(paths))
        parent = data
        for part in parents:
            parent = parent[part]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(_TEXT)] = draw(json_values)
    return event_type, data


def _record(event_type: str, data: Any, key: bytes | None) -> KafkaRecord:
    example = next(s for s in example_submissions(PARTNER) if s.event_type == event_type)
    record = encode(example, source=f"/partners/{PARTNER}")
    headers = tuple((n, v) for n, v in record.headers if n != "ce_subject")  # the example's external_id
    return KafkaRecord(record.topic, key, headers, json.dumps(data).encode())


@FUZZ
@given(submission=mutated_submissions(), key_from_data=st.booleans())
def test_mutated_submissions_are_accepted_or_rejected_with_reasons(
    submission: tuple[str, dict[str, Any]], key_from_data: bool
) -> None:
    event_type, data = submission
    external_id = data.get("external_id") if isinstance(data, dict) else None
    key = str(external_id).encode() if key_from_data else b"fuzz-key"
    decision, work = decide_record(_record(event_type, data, key))

    assert decision.status in ("accepted", "held", "rejected")
    if decision.status == "rejected":
        check_rejection(decision, work)
    assert storable(work)


@FUZZ
@given(
    drop=st.sets(st.sampled_from(_KNOWN_HEADERS)),
    extra=st.lists(st.tuples(st.sampled_from(_KNOWN_HEADERS), header_values), max_size=3),
)
def test_valid_data_with_mangled_headers(drop: set[str], extra: list[tuple[str, bytes | None]]) -> None:
    record = _record("volunteer-registered", _valid("volunteer-registered"), b"clinic-a-vol-0017")
    record = KafkaRecord(record.topic, b"fuzz-clinic-vol-0017", record.headers, record.value)
    headers = [(n, v) for n, v in record.headers if n not in drop] + extra
    decision, work = decide(decode(TOPIC, record.key, headers, record.value))  # type: ignore[arg-type]

    if decision.status == "rejected":
        check_rejection(decision, work)
    else:  # only with every required header, once
        names = Counter(name for name, _ in headers)
        assert all(names[n] == 1 for n in ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time"))


# -- valid submissions ------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_valid_traffic_is_accepted(seed: int) -> None:
    """A simulated partner feed, decided as one batch: every submission accepted, the canonical events
    exactly those the simulator expects."""
    traffic = simulate([PARTNER, OTHER], total=30, today=TODAY, malformed_ratio=0, seed=seed)
    work = new_work()
    for item in traffic.items:
        decoded = decode(item.record.topic, item.record.key, list(item.record.headers), item.record.value)
        assert isinstance(decoded, Envelope), decoded.reasons if isinstance(decoded, DecodeError) else None
        assert rules.check_submission(decoded.data, TODAY) == []  # type: ignore[arg-type]
        decision, _ = decide(decoded, work)
        assert decision.status in ("accepted", "held"), decision.reasons

    assert all(d.status == "accepted" for d in work.decisions.values())  # the held ones were released
    published = Counter(dict(r.headers)["ce_type"].decode() for r in work.records)
    assert published == traffic.expected_events()
    assert storable(work)


# Any printable text is a name (hostile markup and SQL included): kept as text, trimmed, NFC.
names = st.text(st.characters(categories=["L", "M", "N", "P", "S", "Zs"]), min_size=1, max_size=150).filter(
    lambda s: s.strip()
)


@FUZZ
@given(name=names)
@example(name="Robert'); DROP TABLE volunteers;--")
@example(name="<script>alert('xss')</script>")
def test_any_printable_name_is_accepted_as_text(name: str) -> None:
    data = _valid("volunteer-registered") | {"name": name, "external_id": "fuzz-vol-1"}
    decision, work = decide_record(_record("volunteer-registered", data, b"fuzz-vol-1"))

    assert decision.status == "accepted", decision.reasons
    [published] = [r for r in work.records if r.topic == "volunteers"]
    event = decode(published.topic, published.key, list(published.headers), published.value)
    assert isinstance(event, Envelope)
    assert isinstance(event.data, VolunteerRegistered)
    assert event.data.name == rules.normalise_name(name)


# -- U+0000: valid JSON, unstorable in PostgreSQL text; decode rejects it -----------------------


def _with_nul_in_name() -> KafkaRecord:
    data = _valid("volunteer-registered") | {"name": "Dana\x00Whitfield", "external_id": "fuzz-vol-nul"}
    return _record("volunteer-registered", data, b"fuzz-vol-nul")


def _with_nul_in_field_name() -> KafkaRecord:
    data = _valid("volunteer-registered") | {"bad\x00field": 1, "external_id": "fuzz-vol-nul"}
    return _record("volunteer-registered", data, b"fuzz-vol-nul")


def _with_nul_in_ce_type() -> KafkaRecord:
    record = _record("volunteer-registered", _valid("volunteer-registered"), b"fuzz-clinic-vol-0017")
    headers = tuple((n, b"volunteer-registered\x00" if n == "ce_type" else v) for n, v in record.headers)
    return KafkaRecord(record.topic, record.key, headers, record.value)


def _with_nul_in_header_name() -> KafkaRecord:
    record = _record("volunteer-registered", _valid("volunteer-registered"), b"fuzz-clinic-vol-0017")
    data = _valid("volunteer-registered") | {"facilities_reachable": ["NOWHERE1"]}  # rejected: quarantined
    headers = (*record.headers, ("x-trace\x00id", b"1"))
    return KafkaRecord(record.topic, record.key, headers, json.dumps(data).encode())


@pytest.mark.parametrize(
    "record",
    [_with_nul_in_name(), _with_nul_in_field_name(), _with_nul_in_ce_type(), _with_nul_in_header_name()],
    ids=[
        "in-a-name (volunteers.profile)",
        "in-a-field-name (quarantine.reasons)",
        "in-ce_type (submissions.event_type)",
        "in-a-header-name (quarantine.headers)",
    ],
)
def test_nul_is_rejected_before_storage(record: KafkaRecord) -> None:
    decision, work = decide_record(record)

    assert decision.status == "rejected"
    assert storable(work)
