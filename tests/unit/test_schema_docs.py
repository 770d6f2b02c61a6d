"""docs/schemas is generated from the contracts: regenerate it and compare with the committed copy."""

from __future__ import annotations

import json
from pathlib import Path

from lastline_shared.contracts import INTERNAL_EVENTS, PARTNER_SUBMISSIONS
from lastline_shared.contracts.export import main, render, write

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
REGENERATE = "python -m lastline_shared.contracts.export docs/schemas"


def files_under(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_docs_schemas_match_the_code(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 0
    generated = files_under(tmp_path)
    committed = files_under(DOCS)
    assert sorted(committed) == sorted(generated), f"schema files differ; run `{REGENERATE}`"
    stale = [name for name in generated if committed[name] != generated[name]]
    assert stale == [], f"stale schema docs {stale}; run `{REGENERATE}`"


def test_one_schema_per_event_type_in_separate_folders() -> None:
    files = render()
    assert {f"events/{m.event_type}.v1.json" for m in INTERNAL_EVENTS} <= set(files)
    assert {f"partner/{m.event_type}.v1.json" for m in PARTNER_SUBMISSIONS} <= set(files)
    index = json.loads(files["index.json"])
    assert len(index["internal"]) == len(INTERNAL_EVENTS)
    assert len(index["partner"]) == len(PARTNER_SUBMISSIONS)
    partner_case = json.loads(files["partner/case-opened.v1.json"])
    internal_case = json.loads(files["events/case-opened.v1.json"])
    assert partner_case["$id"] == "urn:lastline:partner:case-opened:v1"
    assert "client" in partner_case["properties"]
    assert "client" not in internal_case["properties"]
    assert internal_case["additionalProperties"] is False


def test_export_removes_schemas_of_types_that_are_gone(tmp_path: Path) -> None:
    stale = tmp_path / "events" / "case-reopened.v1.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    write(tmp_path)
    assert not stale.exists()
    assert (tmp_path / "events" / "case-opened.v1.json").exists()
