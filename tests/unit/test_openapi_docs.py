"""The committed OpenAPI documents match what the services serve (`make docs` regenerates them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lastline_infra.asyncapi import SERVICES
from lastline_infra.openapi import render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "openapi"


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_document_is_up_to_date(service: str) -> None:
    path = DOCS / f"{service}.json"
    document = render(service)
    if document is None:
        assert not path.exists(), f"{path} documents endpoints {service} no longer has: run `make docs`"
    else:
        assert path.exists(), f"{path} is missing: run `make docs`"
        assert path.read_text() == document, f"{path} is stale: run `make docs`"


def test_intake_documents_the_partner_api() -> None:
    rendered = render("intake")
    assert rendered is not None
    document = json.loads(rendered)
    submit = document["paths"]["/v1/submissions"]["post"]
    body = submit["requestBody"]["content"]
    assert {"application/json", "application/cloudevents+json"} <= body.keys()
    described = [option["description"] for option in body["application/json"]["schema"]["anyOf"]]
    assert all(text.startswith("`ce-type: ") for text in described)
    assert len(described) == 6
    assert {"200", "202", "400", "401", "422"} <= submit["responses"].keys()
    assert {"HTTPBearer", "APIKeyHeader"} <= document["components"]["securitySchemes"].keys()
    assert "/v1/submissions/{submission_id}" in document["paths"]
    assert "$ref" not in json.dumps(body).replace('"$ref": "#/components/', "")  # self-contained
