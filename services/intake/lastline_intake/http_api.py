"""The partner HTTP API: the second channel beside Kafka, through the same decoder and processor.

A request becomes the Kafka record the partner could have published instead: CloudEvents' HTTP
binary mode (``ce-*`` headers, the submission as the JSON body) maps header for header onto the Kafka
binding's ``ce_*`` headers, structured mode (one ``application/cloudevents+json`` object) attribute
for attribute, and the key is the body's ``external_id``. That record goes through
:func:`~lastline_shared.contracts.envelope.decode` and :meth:`SubmissionProcessor.process`, as a
batch of one in its own transaction, so both channels validate, deduplicate (per partner and event
id, whichever channel the first copy came by), reject, quarantine and publish alike.

The partner is whoever the API key belongs to, never what the request says.
"""

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from pydantic_core import from_json
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lastline_intake.decisions import Decision, Received, Result, Status
from lastline_intake.partners import PartnerRepository, parse_key
from lastline_intake.processing import SubmissionProcessor
from lastline_shared.contracts.catalog import SUBMISSION_BY_TYPE
from lastline_shared.contracts.envelope import (
    SPECVERSION,
    DecodeCode,
    DecodeError,
    Envelope,
    Reason,
    decode,
    format_time,
)
from lastline_shared.contracts.examples import example_submissions
from lastline_shared.contracts.topics import PARTNER_SUBMISSIONS as SUBMISSIONS_TOPIC
from lastline_shared.logging import get_logger
from lastline_shared.ops import PROBLEM_MEDIA_TYPE, ProblemError

log = get_logger(__name__)

BINARY_MEDIA_TYPE = "application/json"
STRUCTURED_MEDIA_TYPE = "application/cloudevents+json"
RETRIES = 3
"""How often a submission that lost a race on a unique key (another instance, the same client) is
retried; the retry sees the other's row and merges instead."""

_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "dataschema")
"""The CloudEvents attributes :func:`decode` reads, as ``ce-<name>`` (HTTP) or ``ce_<name>`` (Kafka)."""


# -- requests into records ----------------------------------------------------------------------


def media_type(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def _key(data: bytes | None) -> bytes | None:
    """The record key a partner would use: the body's ``external_id`` (decode checks the rest)."""
    if not data:
        return None
    try:
        parsed = from_json(data)
    except ValueError:
        return None
    external_id = parsed.get("external_id") if isinstance(parsed, dict) else None
    return external_id.encode() if isinstance(external_id, str) else None


def _defaults(partner_id: str, found: set[str], now: datetime) -> list[tuple[str, bytes]]:
    """What HTTP lets a partner leave out: the source (it is known from the key) and the time."""
    defaults = []
    if "ce_source" not in found:
        defaults.append(("ce_source", f"/partners/{partner_id}".encode()))
    if "ce_time" not in found:
        defaults.append(("ce_time", format_time(now).encode()))
    return defaults


def _decoded(
    partner_id: str, headers: list[tuple[str, bytes]], value: bytes | None, *, structured: bool
) -> Envelope | DecodeError:
    """:func:`decode` of the record the request stands for, its reasons in the caller's terms."""
    topic = SUBMISSIONS_TOPIC.for_partner(partner_id)
    item = decode(topic, _key(value), headers, value)
    if isinstance(item, DecodeError):
        item = replace(item, reasons=tuple(_http_reason(r, structured) for r in item.reasons))
    return item


def from_binary(
    partner_id: str, headers: Sequence[tuple[bytes, bytes]], body: bytes, now: datetime
) -> Envelope | DecodeError:
    """A binary-mode request: every ``ce-*`` header we know (repeats kept, for decode to refuse),
    ``content-type`` and ``traceparent`` become the Kafka headers; other headers are not the event's."""
    known = {f"ce-{a}": f"ce_{a}" for a in _ATTRIBUTES} | {"content-type": "content-type"}
    known["traceparent"] = "traceparent"
    mapped = [
        (known[name], value)
        for raw_name, value in headers
        if (name := raw_name.decode("latin-1").lower()) in known
    ]
    mapped += _defaults(partner_id, {name for name, _ in mapped}, now)
    return _decoded(partner_id, mapped, body, structured=False)


def from_structured(partner_id: str, body: bytes, now: datetime) -> Envelope | DecodeError | None:
    """A structured-mode event, or None if the body is not one JSON object with JSON ``data``."""
    try:
        event = from_json(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or "data_base64" in event:
        return None
    names = {f"ce_{a}": a for a in _ATTRIBUTES} | {"content-type": "datacontenttype"}
    names["traceparent"] = "traceparent"
    headers = [
        (name, (value if isinstance(value, str) else json.dumps(value)).encode())
        for name, attribute in names.items()
        if (value := event.get(attribute)) is not None
    ]
    headers += _defaults(partner_id, {name for name, _ in headers}, now)
    data = json.dumps(event["data"], ensure_ascii=False).encode() if "data" in event else None
    return _decoded(partner_id, headers, data, structured=True)


def _http_reason(reason: Reason, structured: bool) -> Reason:
    """A reason in the caller's terms: ``headers.ce-type`` (binary) or ``type`` (structured mode)
    rather than the Kafka binding's ``headers.ce_type``; data paths are the same on both channels."""
    path = reason.path
    if path.startswith("headers.ce_"):
        attribute = path.removeprefix("headers.ce_")
        path = attribute if structured else f"headers.ce-{attribute}"
    elif structured and path == "headers.content-type":
        path = "datacontenttype"
    elif structured and reason.code == DecodeCode.MISSING_VALUE:
        return Reason("data", reason.code, "The event has no data")
    message = reason.message
    if structured and reason.code == DecodeCode.MISSING_HEADER:
        message = "Required attribute missing"
    return replace(reason, path=path, message=message)


# -- what the API documents -----------------------------------------------------------------------


class ReasonBody(BaseModel):
    path: str = Field(
        description="Where: a path into the submission (`client.a_number`, `languages[1]`), a header "
        '(`headers.ce-type`), an attribute in structured mode (`type`), or `""` for the whole body'
    )
    code: str = Field(description="Stable and machine-readable: `invalid_json`, `unknown_facility`, ...")
    message: str = Field(description="For people; never repeats the submitted value")


class DecisionBody(BaseModel):
    """What became of a submission."""

    submission_id: UUID = Field(description="Intake's id for this submission (`GET /v1/submissions/{id}`)")
    status: Status
    duplicate: bool = Field(
        description="This request repeated an earlier event id; the decision is the first's"
    )
    event_id: str | None = Field(description="The CloudEvents `id` (`ce-id`), lower-cased")
    event_type: str | None = Field(description="The CloudEvents `type` (`ce-type`)")
    external_id: str | None = Field(description="Your id for the volunteer or case")
    result: Result | None = Field(
        description="What the submission did to its record: `held` is an update that arrived before its "
        "registration, applied when the registration arrives"
    )
    case_id: UUID | None = Field(description="The network's pseudonymous id for the case")
    volunteer_id: UUID | None = Field(description="The network's id for the volunteer")
    reasons: list[ReasonBody] = Field(description="Why it was rejected (empty otherwise)")
    received_at: datetime | None
    decided_at: datetime | None


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
    "required": ["type", "title", "status"],
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_SCHEMA}}}


def _decision(description: str) -> dict[str, Any]:
    return {"description": description, "model": DecisionBody}


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """A pydantic JSON Schema with its ``$defs`` inlined: FastAPI puts only the models it validates
    in ``components``, and intake validates submissions itself (through decode)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs) | _inline_refs(siblings, defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _submission_schemas() -> dict[str, Any]:
    options = []
    for model in SUBMISSION_BY_TYPE.values():
        schema = model.model_json_schema(mode="validation")
        schema = _inline_refs(schema, schema.get("$defs", {}))
        schema["description"] = f"`ce-type: {model.event_type}`. {schema.get('description', '')}".strip()
        options.append(schema)
    return {"anyOf": options}


def _request_body() -> dict[str, Any]:
    examples = {s.event_type: json.loads(s.model_dump_json()) for s in example_submissions()}
    data = _submission_schemas()
    opened = examples["case-opened"]
    structured_example = {
        "specversion": SPECVERSION,
        "id": "0b6d3c55-51c4-4f4e-9f2a-5d0c1c9f7a10",
        "type": "case-opened",
        "data": opened,
    }
    return {
        "required": True,
        "description": "The submission: in binary mode the body is its data and `ce-type` says which "
        "kind it is; in structured mode one CloudEvent with the data in `data`.",
        "content": {
            BINARY_MEDIA_TYPE: {
                "schema": data,
                "examples": {name: {"summary": name, "value": value} for name, value in examples.items()},
            },
            STRUCTURED_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["specversion", "id", "type", "data"],
                    "properties": {
                        "specversion": {"const": SPECVERSION},
                        "id": {"type": "string", "format": "uuid", "description": "As `ce-id`"},
                        "type": {"enum": list(SUBMISSION_BY_TYPE)},
                        "source": {"type": "string", "description": "As `ce-source`"},
                        "time": {"type": "string", "format": "date-time"},
                        "subject": {"type": "string"},
                        "dataschema": {"type": "string"},
                        "datacontenttype": {"const": BINARY_MEDIA_TYPE},
                        "traceparent": {"type": "string"},
                        "data": data,
                    },
                },
                "examples": {"case-opened": {"summary": "case-opened", "value": structured_example}},
            },
        },
    }


def _header(name: str, description: str) -> dict[str, Any]:
    # Not "required": structured mode sends none of them.
    return {"name": name, "in": "header", "schema": {"type": "string"}, "description": description}


_BINARY_HEADERS = [
    _header("ce-specversion", f"Binary mode: required, `{SPECVERSION}`."),
    _header(
        "ce-id",
        "Binary mode: required. A UUID you choose for this event, the idempotency key: the same id "
        "again (by HTTP or Kafka) has no second effect and answers 200 with the first decision.",
    ),
    _header("ce-type", "Binary mode: required. " + ", ".join(f"`{t}`" for t in SUBMISSION_BY_TYPE)),
    _header("ce-time", "When it happened (RFC 3339 with an offset); default: when it arrived."),
    _header("ce-source", "If sent, `/partners/<your partner id>`."),
    _header("ce-subject", "If sent, the body's `external_id`."),
    _header("ce-dataschema", "If sent, the type's schema, e.g. `urn:lastline:partner:case-opened:v1`."),
    _header("traceparent", "W3C trace context, carried into the events intake publishes."),
]

_SUBMIT_DESCRIPTION = f"""\
Submit a volunteer registration, a case referral or an update, exactly as on your Kafka topic
`partner.<partner-id>.submissions`: the same validation, the same events, the same rejections
(also published on `partner.<partner-id>.rejections`).

CloudEvents 1.0 over HTTP. **Binary mode**: `ce-*` headers and `Content-Type: {BINARY_MEDIA_TYPE}`
with the submission as the body. **Structured mode**: `Content-Type: {STRUCTURED_MEDIA_TYPE}` and one
event object (`specversion`, `id`, `type`, `data`, optional `source`, `time`, `subject`).

- **202**: accepted (or held: an update before its registration, applied when that arrives).
- **422**: rejected, with every reason; kept for staff review and published as `submission-rejected`.
- **200**: this event id was seen before; the first decision, with `duplicate: true`.
- **400**: neither content type; **413**: the body is larger than the limit (1 MiB by default).
"""


# -- the router ----------------------------------------------------------------------------------


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _not_found() -> ProblemError:
    return ProblemError(404, "Not found", "No submission of yours has this id")


def _authenticator(
    sessions: async_sessionmaker[AsyncSession], partners: PartnerRepository
) -> Callable[..., Awaitable[str]]:
    """The dependency that answers "which partner is this?" from the API key, or refuses with 401."""
    bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer ll_<key-id>_<secret>`")
    api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The same key, as `X-API-Key`")

    async def authenticated_partner(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        header_key: Annotated[str | None, Depends(api_key)],
    ) -> str:
        presented = credentials.credentials if credentials is not None else header_key
        if not presented:
            raise _unauthorized("Send your API key as `Authorization: Bearer <key>` or `X-API-Key`")
        async with sessions.begin() as session:
            partner_id = await partners.verify_key(session, presented)
        if partner_id is None:
            parsed = parse_key(presented)
            log.warning("API key refused", key_id=parsed.key_id if parsed else None)  # never the secret
            raise _unauthorized("The API key is not valid: unknown, revoked, or its partner is inactive")
        return partner_id

    return authenticated_partner


async def _decide(
    sessions: async_sessionmaker[AsyncSession], processor: SubmissionProcessor, received: Received
) -> Decision:
    """The processor on a batch of one in its own transaction, retried after losing a race."""
    for attempt in range(RETRIES + 1):
        try:
            async with sessions.begin() as session:
                [decision] = await processor.process(session, [received])
        except IntegrityError:
            log.info("submission raced another on a unique key; retrying", attempt=attempt + 1)
            continue
        return decision
    raise ProblemError(503, "Busy", "Try again shortly", headers={"Retry-After": "1"})


def build_router(
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: SubmissionProcessor,
    partners: PartnerRepository,
) -> APIRouter:
    """``/v1/submissions``: submit and ask what became of a submission, authenticated by API key."""
    router = APIRouter(prefix="/v1", tags=["partner submissions"])
    partner_dependency = Depends(_authenticator(sessions, partners))

    @router.post(
        "/submissions",
        operation_id="submit",
        status_code=202,
        summary="Submit a volunteer or a case",
        description=_SUBMIT_DESCRIPTION,
        response_model=None,
        responses={
            200: _decision("A repeat of an event id already decided: the first decision"),
            202: _decision("Accepted, or held until its registration arrives"),
            400: _problem("Not JSON (`application/json`) nor a structured CloudEvent"),
            401: _problem("No API key, or not a valid one"),
            413: {"description": "The body is larger than the limit"},
            422: _decision("Rejected: the reasons say why"),
            503: _problem("Kept losing a race with concurrent submissions; retry"),
        },
        openapi_extra={"parameters": _BINARY_HEADERS, "requestBody": _request_body()},
    )
    async def submit(request: Request, partner_id: Annotated[str, partner_dependency]) -> JSONResponse:
        media = media_type(request.headers.get("content-type"))
        if media not in (BINARY_MEDIA_TYPE, STRUCTURED_MEDIA_TYPE):
            detail = f"Send Content-Type: {BINARY_MEDIA_TYPE} (binary mode) or {STRUCTURED_MEDIA_TYPE}"
            raise ProblemError(400, "Unsupported content type", detail)
        body = await request.body()
        now = datetime.now(UTC)
        if media == BINARY_MEDIA_TYPE:
            item = from_binary(partner_id, request.headers.raw, body, now)
        elif (structured := from_structured(partner_id, body, now)) is not None:
            item = structured
        else:
            detail = "The body must be one CloudEvent as a JSON object, with the data as JSON in `data`"
            raise ProblemError(400, "Not a structured CloudEvent", detail)
        decision = await _decide(sessions, processor, Received(item, "http", now))
        log.info(
            "http submission decided",
            submission_id=str(decision.submission_id),
            partner_id=partner_id,
            status=decision.status,
            duplicate=decision.duplicate,
        )
        location = str(request.url_for("partner_submission", submission_id=decision.submission_id))
        status = 200 if decision.duplicate else 422 if decision.status == "rejected" else 202
        return JSONResponse(decision.as_json(), status, headers={"Location": location})

    @router.get(
        "/submissions/{submission_id}",
        name="partner_submission",
        operation_id="get_submission",
        summary="What became of a submission",
        description="The decision on one of your submissions, by the `submission_id` intake gave it.",
        response_model=None,
        responses={
            200: _decision("The decision"),
            401: _problem("No API key, or not a valid one"),
            404: _problem("No submission of yours has this id"),
        },
    )
    async def get_submission(
        partner_id: Annotated[str, partner_dependency],
        submission_id: Annotated[str, Path(description="The `submission_id` of a decision")],
    ) -> JSONResponse:
        try:
            wanted = UUID(submission_id)
        except ValueError:
            raise _not_found() from None
        async with sessions() as session:
            decision = await processor.decision(session, partner_id, submission_id=wanted)
        if decision is None:
            raise _not_found()
        return JSONResponse(decision.as_json())

    @router.get(
        "/submissions",
        operation_id="find_submission",
        summary="What became of a submission, by its event id",
        description="The decision on one of your submissions, by the CloudEvents id (`ce-id`) you sent.",
        response_model=None,
        responses={
            200: _decision("The decision"),
            401: _problem("No API key, or not a valid one"),
            404: _problem("No submission of yours has this event id"),
        },
    )
    async def find_submission(
        partner_id: Annotated[str, partner_dependency],
        event_id: Annotated[str, Query(min_length=1, max_length=200, description="The `ce-id` you sent")],
    ) -> JSONResponse:
        async with sessions() as session:
            decision = await processor.decision(session, partner_id, event_id=event_id.lower())
        if decision is None:
            raise _not_found()
        return JSONResponse(decision.as_json())

    return router
