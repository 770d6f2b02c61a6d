"""Write one AsyncAPI document per service (``make docs``); a unit test keeps them in step with the code."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

SERVICES = ("intake", "matching", "notifications", "reporting")


def render(service: str) -> str:
    app: Any = importlib.import_module(f"lastline_{service}.app").asyncapi
    document = app.schema.to_specification().to_jsonable()
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service in SERVICES:
        path = directory / f"{service}.json"
        path.write_text(render(service))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/asyncapi")):
        print(path)
