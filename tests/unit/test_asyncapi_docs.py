"""The committed AsyncAPI documents match what the services declare (`make docs` regenerates them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lastline_infra.asyncapi import SERVICES, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"


@pytest.mark.parametrize("service", SERVICES)
def test_asyncapi_document_is_up_to_date(service: str) -> None:
    committed = (DOCS / f"{service}.json").read_text()
    assert committed == render(service), f"docs/asyncapi/{service}.json is stale: run `make docs`"


def test_intake_documents_the_topics_it_publishes() -> None:
    channels = json.loads(render("intake"))["channels"]
    assert {name.split(":")[0] for name in channels} >= {"volunteers", "cases", "facilities"}
