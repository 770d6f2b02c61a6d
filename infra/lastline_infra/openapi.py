"""Write the OpenAPI document of every service with HTTP endpoints of its own (``make docs``).

A service's document is what its app serves at ``/openapi.json``; a service with only the ops
endpoints (``/health``, ``/ready``, ``/metrics``) gets none. A unit test keeps the committed
documents in step with the code.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from lastline_infra.asyncapi import SERVICES


def render(service: str) -> str | None:
    """The service's OpenAPI document as committed, or None if it has no endpoints of its own."""
    runtime: Any = importlib.import_module(f"lastline_{service}.app").runtime
    if not runtime.routers:
        return None
    document = runtime.http_app().openapi()
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(directory: Path) -> list[Path]:
    """Write ``<service>.json`` for each service with endpoints; remove a stale one for the rest."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service in SERVICES:
        path = directory / f"{service}.json"
        document = render(service)
        if document is None:
            path.unlink(missing_ok=True)
            continue
        path.write_text(document)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/openapi")):
        print(path)
