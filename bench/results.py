"""Benchmark figures: printed as a table and kept in bench/results.json for later comparison.

``make bench`` replaces the file with the whole run's figures; one benchmark run alone merges its
figures into it by name, so that the others' figures are kept."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results.json"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    return f"{cpu}, {os.cpu_count()} cores, {mem}, Python {platform.python_version()}"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str | None
    baseline_value: float | None
    machine: str
    load: str


def merged(figures: list[Figure]) -> list[Figure]:
    """The figures already in results.json but these (replaced by name), then these."""
    names = {f.name for f in figures}
    kept = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    return [Figure(**f) for f in kept if f["name"] not in names] + figures


def report(figures: list[Figure], *, replace: bool = False) -> None:
    """Print ``figures``; write them to results.json, alone (``replace``: a whole run) or merged
    into the figures already there."""
    rows = [("figure", "value", "baseline (same run)", "load")]
    for f in figures:
        base = f"{f.baseline_value:,.0f} {f.unit} ({f.baseline_name})" if f.baseline_name else "-"
        rows.append((f.name, f"{f.value:,.1f} {f.unit}", base, f.load))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"\nmachine: {figures[0].machine if figures else machine()}")
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    kept = figures if replace else merged(figures)
    RESULTS.write_text(json.dumps([asdict(f) for f in kept], indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")
