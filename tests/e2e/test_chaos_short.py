"""The chaos run's short form (``python -m chaos --short``): 1,500 partner events through two instances of
each service while each service is SIGKILLed once, the broker and PostgreSQL restarted once, on a Kafka
and PostgreSQL of its own (ports 29092/29093/25432, var/chaos-short), never the shared ones.

The run judges the invariants itself; this test reads its report and asserts them again, so that a
report that says "ok" while a figure is off still fails. Whatever happens, the run's processes and
servers are stopped: the chaos process on SIGINT, and what it left behind through its pid files.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos.fleet import kill_leftovers
from chaos.infra import ChaosInfra, chaos_layout, clean_environ
from lastline_infra.layout import REPO_ROOT

pytestmark = pytest.mark.e2e

VAR_DIR = REPO_ROOT / "var" / "chaos-short"
KAFKA_PORT = 29092
POSTGRES_PORT = 25432
# A few minutes on a busy 2-core machine: eight service processes start, the broker's restart alone
# takes up to a minute, and matching has to catch up after the faults.
RUN_TIMEOUT_S = 840
CHECKS = (
    "the system settled",
    "partner topics hold each simulated record once",
    "one canonical event per accepted submission",
    "one rejection per malformed submission",
    "intake decided each submission once",
    "no case has two active matches (matching's table)",
    "no case has two active matches (the matches topic)",
    "no volunteer exceeds capacity",
    "every email sent was received, repeats within the documented window",
    "every webhook sent was received, repeats within the documented window",
    "the DLQs hold exactly the injected records",
    "reporting's live figures equal a rebuild from the topics",
    "reporting's figures equal counts from the topics",
)


def run_short() -> tuple[int, str]:
    argv = [sys.executable, "-m", "chaos", "--short", "--var-dir", str(VAR_DIR)]
    argv += ["--kafka-port", str(KAFKA_PORT), "--postgres-port", str(POSTGRES_PORT)]
    process = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        # Never the shared servers the rest of the suite uses, nor options meant for `make chaos`.
        env={k: v for k, v in clean_environ().items() if not k.startswith("CHAOS_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # SIGINT: the run cancels itself and its finally blocks stop the services and servers.
        os.killpg(process.pid, signal.SIGINT)
        try:
            out, _ = process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
        return -1, out.decode(errors="replace")
    return process.returncode, out.decode(errors="replace")


def cleanup() -> None:
    kill_leftovers(VAR_DIR / "run")
    asyncio.run(ChaosInfra(chaos_layout(VAR_DIR, KAFKA_PORT, POSTGRES_PORT)).down())


def report() -> dict[str, Any]:
    path = VAR_DIR / "report.json"
    found: dict[str, Any] = json.loads(path.read_text())
    return found


@pytest.mark.timeout(RUN_TIMEOUT_S + 200)
def test_short_chaos_run_keeps_every_invariant() -> None:
    (VAR_DIR / "report.json").unlink(missing_ok=True)
    try:
        code, out = run_short()
    finally:
        cleanup()
    tail = "\n".join(out.splitlines()[-60:])
    assert code == 0, f"the chaos run failed (exit {code}):\n{tail}"
    result = report()
    assert result["ok"], tail
    assert (result["exit_code"], result["verdict"]) == (0, "all invariants hold")
    assert result["not_judged"] == []
    assert result["settled"]["done"]
    by_name = {check["name"]: check for check in result["checks"]}
    for name in CHECKS:
        assert by_name[name]["ok"], f"{name}: {by_name[name]['detail']}"
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    events = result["events"]
    assert events["published"] == 1_500
    assert events["canonical_distinct"] == events["canonical_expected"] > 0
    faults = result["faults"]["injected"]
    assert faults["sigkill_by_service"] == {"intake": 1, "matching": 1, "notifications": 1, "reporting": 1}
    assert (faults["kafka-restart"], faults["postgres-restart"]) == (1, 1)
    # The stream did reach the outside world through the faults.
    assert result["deliveries"]["email"]["sent"] > 0
    assert result["deliveries"]["webhook"]["sent"] > 0
    assert result["dlq"]["injected"] > 0
    assert result["dlq"]["stray"] == 0
    assert result["answers"].get("accept:accepted", 0) > 0
    # Nothing of the run is left running.
    layout = chaos_layout(VAR_DIR, KAFKA_PORT, POSTGRES_PORT)
    assert not list((VAR_DIR / "run").glob("*.pid"))
    assert not (layout.kafka_pid_file).exists()
    assert not Path(layout.postgres_data / "postmaster.pid").exists()
