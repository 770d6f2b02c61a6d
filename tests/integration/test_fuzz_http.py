"""The partner HTTP API fuzzed against the real app and database: whatever the body, content type and
CloudEvents headers, the answer is a decision (200/202, or 422 with reasons) or a 4xx problem+json
naming the problem; never a server error.

Hypothesis runs in a worker thread and sends each request on the test's event loop (where the app,
its database engine and the client live), so that it can shrink a failing request.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lastline_intake.http_api import DecisionBody
from lastline_shared.contracts.catalog import SUBMISSION_BY_TYPE
from lastline_shared.contracts.examples import NOW, example_submissions
from tests.corpus import REASON_CODES
from tests.integration.test_intake_http import MAX_BODY, P1, P2, Api, api_on
from tests.support.intake import intake_db

pytestmark = pytest.mark.integration

T = TypeVar("T")
HTTP_FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis/ in the checkout; a failure prints its seed
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api(infra) -> AsyncIterator[Api]:  # type: ignore[no-untyped-def]
    async with intake_db(infra.database_url, NOW.date()) as db:
        await db.add_partner(P1)
        await db.add_partner(P2)
        async with api_on(db) as api:
            yield api


def check(response: httpx.Response) -> None:
    """A decision, or a problem that says what is wrong (or a redirect); never 5xx."""
    status, media = response.status_code, response.headers.get("content-type", "")
    assert status < 500, response.text[:2000]
    if status in (200, 202) or (status == 422 and media == "application/json"):
        decision = DecisionBody.model_validate(response.json())
        assert (decision.status == "rejected") == (status == 422) or decision.duplicate
        if decision.status == "rejected":
            assert decision.reasons
            assert {r.code for r in decision.reasons} <= REASON_CODES
        return
    if status in (307, 308):  # Starlette's redirect of a trailing slash to the path without it
        assert response.headers["location"]
        return
    assert 400 <= status < 500, status
    assert media == "application/problem+json", (status, media, response.text[:500])
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"]
    assert problem.get("detail") or problem.get("errors"), problem


def _send(loop: asyncio.AbstractEventLoop, request: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)


# -- strategies -----------------------------------------------------------------------------------

# What an HTTP server lets through in a header value (h11: visible ASCII and obs-text, inner blanks).
header_text = (
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=60)
    .map(str.strip)
    .map(lambda s: s.encode("latin-1"))
)


def _plausible(*values: str) -> st.SearchStrategy[bytes | None]:
    return st.one_of(st.none(), st.sampled_from([v.encode() for v in values]), header_text)


CE_HEADERS: dict[str, st.SearchStrategy[bytes | None]] = {
    "ce-specversion": _plausible("1.0", "0.3", "1.0 ", "2"),
    "ce-id": st.one_of(st.builds(lambda: str(uuid.uuid4()).encode()), _plausible("not-a-uuid", "")),
    "ce-type": _plausible(*SUBMISSION_BY_TYPE, "case-reopened", "match-proposed", "CaseOpened"),
    "ce-source": _plausible(f"/partners/{P1}", f"/partners/{P2}", "/services/intake", "partner"),
    "ce-time": _plausible("2026-03-02T10:30:00Z", "2026-03-02T10:30:00", "03/02/2026", "1767225600"),
    "ce-subject": _plausible("clinic-a-vol-0017", "other"),
    "ce-dataschema": _plausible("urn:lastline:partner:case-opened:v1", "http://example.org/schema"),
    "traceparent": _plausible("00-" + "a" * 32 + "-" + "b" * 16 + "-01", "garbage"),
}
content_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/cloudevents+json",
            "application/cloudevents-batch+json",
            "text/plain",
            "application/xml",
            "multipart/form-data; boundary=x",
            "",
        ]
    ).map(str.encode),
    header_text,
)

_EXAMPLES = {s.event_type: json.loads(s.model_dump_json()) for s in example_submissions(P1)}
# U+0000 is left out: a known server error (test_nul_in_a_submission_is_not_a_server_error).
_TEXT = st.text(st.characters(blacklist_characters="\x00"), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def submission_data(draw: st.DrawFn) -> tuple[str, Any]:
    """A contract example and its type, maybe with one field replaced, removed or added."""
    event_type = draw(st.sampled_from(sorted(_EXAMPLES)))
    data = dict(_EXAMPLES[event_type])
    field = draw(st.sampled_from(sorted(data)))
    change = draw(st.sampled_from(["none", "replace", "delete", "add"]))
    if change == "replace":
        data[field] = draw(json_values)
    elif change == "delete":
        del data[field]
    elif change == "add":
        data[draw(_TEXT)] = draw(json_values)
    return event_type, data


bodies = st.one_of(
    submission_data(),
    st.tuples(st.just(None), json_values.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.just(None), st.binary(max_size=300)),
    st.just((None, b'{"notes": "' + b"x" * MAX_BODY + b'"}')),  # over the app's limit: 413
)


def _binary_headers(event_type: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"application/json"),
        (b"ce-specversion", b"1.0"),
        (b"ce-id", str(uuid.uuid4()).encode()),
        (b"ce-type", event_type.encode()),
    ]


@st.composite
def binary_requests(draw: st.DrawFn) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A submission in binary mode with a few of its headers fuzzed (left out, odd, garbled, twice)."""
    event_type, body = draw(bodies)
    if event_type is not None:
        body = json.dumps(body).encode()
    valid = {name.decode(): value for name, value in _binary_headers(event_type or "case-opened")}
    fuzzed = {"content-type": content_types, **CE_HEADERS}
    headers: list[tuple[bytes, bytes]] = []
    for name in draw(st.sets(st.sampled_from(sorted(fuzzed)), max_size=3)):
        valid.pop(name, None)
        for value in draw(st.lists(fuzzed[name], min_size=1, max_size=2)):  # sometimes twice
            if value is not None:
                headers.append((name.encode(), value))
    headers += [(name.encode(), value) for name, value in valid.items()]
    return headers, body


@st.composite
def structured_events(draw: st.DrawFn) -> Any:
    event: dict[str, Any] = {
        "specversion": draw(st.sampled_from(["1.0", "0.3", 1.0, None])),
        "id": draw(st.one_of(st.builds(lambda: str(uuid.uuid4())), json_values)),
        "type": draw(st.one_of(st.sampled_from(sorted(SUBMISSION_BY_TYPE)), json_values)),
        "data": draw(st.one_of(submission_data().map(lambda typed: typed[1]), json_values)),
    }
    for attribute in ("source", "time", "subject", "datacontenttype", "data_base64", "dataschema"):
        if draw(st.booleans()):
            event[attribute] = draw(json_values)
    drop = draw(st.sets(st.sampled_from(sorted(event))))
    return {k: v for k, v in event.items() if k not in drop}


# -- the properties -------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_fuzzed_binary_mode_submissions(api: Api) -> None:
    loop = asyncio.get_running_loop()
    auth = (b"authorization", f"Bearer {api.keys[P1]}".encode())
    valid = _EXAMPLES["volunteer-registered"]
    statuses: list[int] = []

    @HTTP_FUZZ
    @given(request=binary_requests())
    @example(request=(_binary_headers("volunteer-registered"), json.dumps(valid).encode()))  # 202
    @example(request=([(b"content-type", b"text/plain")], b"{}"))  # 400
    @example(request=(_binary_headers("case-opened"), b"x" * (MAX_BODY + 1)))  # 413
    @example(request=(_binary_headers("case-opened"), json.dumps(valid).encode()))  # 422
    def submit(request: tuple[list[tuple[bytes, bytes]], bytes]) -> None:
        headers, body = request
        response = _send(loop, api.client.post("/v1/submissions", content=body, headers=[auth, *headers]))
        statuses.append(response.status_code)
        check(response)

    await asyncio.to_thread(submit)
    assert statuses[:4] == [202, 400, 413, 422]  # the explicit examples run first
    assert len(statuses) > 4


@pytest.mark.asyncio(loop_scope="session")
async def test_fuzzed_structured_mode_submissions(api: Api) -> None:
    loop = asyncio.get_running_loop()
    headers = {"authorization": f"Bearer {api.keys[P2]}", "content-type": "application/cloudevents+json"}

    @HTTP_FUZZ
    @given(event=st.one_of(structured_events(), json_values), as_list=st.booleans())
    def submit(event: Any, as_list: bool) -> None:
        body = json.dumps([event] if as_list else event).encode()
        check(_send(loop, api.client.post("/v1/submissions", content=body, headers=headers)))

    await asyncio.to_thread(submit)


@pytest.mark.asyncio(loop_scope="session")
async def test_fuzzed_lookups_keys_and_paths(api: Api) -> None:
    loop = asyncio.get_running_loop()
    keys = st.one_of(
        st.sampled_from([api.keys[P1], "", "ll_x_y", f"{api.keys[P2]}x"]).map(str.encode), header_text
    )
    paths = st.one_of(
        st.sampled_from(["/v1/submissions", "/v1/submissions/", "/v1/nothing", "/v1/submissions/x/y"]),
        st.builds(lambda: f"/v1/submissions/{uuid.uuid4()}"),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30).map(
            lambda s: f"/v1/submissions/{s}"
        ),
    )
    params = st.dictionaries(st.sampled_from(["event_id", "limit", "x"]), st.text(max_size=300), max_size=2)

    @HTTP_FUZZ
    @given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), path=paths, key=keys, query=params)
    def call(method: str, path: str, key: bytes, query: dict[str, str]) -> None:
        headers = {b"authorization": b"Bearer " + key} if key else {}
        request = api.client.request(method, path, params=query, headers=headers)
        check(_send(loop, request))

    await asyncio.to_thread(call)


@pytest.mark.asyncio(loop_scope="session")
async def test_framework_errors_are_problem_json(api: Api) -> None:
    """FastAPI's own 422 and the body limit's 413 (shared/lastline_shared/ops.py) are problem+json."""
    key = {"authorization": f"Bearer {api.keys[P1]}"}
    no_event_id = await api.client.get("/v1/submissions", headers=key)
    too_long = await api.client.get("/v1/submissions", params={"event_id": "x" * 201}, headers=key)
    declared = await api.client.post("/v1/submissions", content=b"x" * (MAX_BODY + 1), headers=key)
    unauthenticated = await api.client.post("/v1/submissions", content=b"x" * (MAX_BODY + 1))

    for response, status in ((no_event_id, 422), (too_long, 422), (declared, 413), (unauthenticated, 413)):
        assert response.status_code == status
        check(response)
    assert [e["path"] for e in no_event_id.json()["errors"]] == ["query.event_id"]
    assert [e["code"] for e in too_long.json()["errors"]] == ["string_too_long"]


@pytest.mark.asyncio(loop_scope="session")
async def test_nul_in_a_submission_is_not_a_server_error(api: Api) -> None:
    data = _EXAMPLES["volunteer-registered"] | {"name": "Dana\u0000Whitfield", "external_id": "nul-1"}
    data["email"] = "nul-1@example.org"
    response = await api.submit(json.dumps(data).encode(), event_type="volunteer-registered")
    check(response)
