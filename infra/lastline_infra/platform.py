"""``python -m lastline_infra.platform run|stop``: the services as supervised processes (``make run``).

``run`` brings Kafka and PostgreSQL up, starts each service as its own OS process (own process
group, output appended to ``var/log/<service>.log``, pid in ``var/run/<service>.pid``), waits until
every ``/ready`` answers 200, prints where everything is, then stays in the foreground: a service
that dies is restarted after a delay that doubles while it keeps dying, and Ctrl-C or SIGTERM stops
them all gracefully. ``stop`` stops what an earlier ``run`` started: its supervisor first (so that
nothing restarts), then any service left behind by a supervisor that was killed.

The e2e tests start services with the same pieces: :class:`ServiceProcess` and :func:`wait_all_ready`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lastline_infra.endpoints import InfraEndpoints
from lastline_infra.errors import InfraError
from lastline_infra.layout import REPO_ROOT, SERVICES, Layout
from lastline_infra.processes import cmdline, pid_alive, port_in_use, read_pid, tail, terminate
from lastline_infra.provisioning import redact_password
from lastline_infra.stack import ensure_up

DEFAULT_PORTS = {"intake": 8001, "matching": 8002, "notifications": 8003, "reporting": 8004}
READY_TIMEOUT_S = 120.0  # four services migrating at once on a small, busy machine
# A service drains for up to 30 s (uvicorn's and the broker's graceful timeouts), then SIGKILL.
STOP_GRACE_S = 35.0
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 30.0
STABLE_AFTER_S = 60.0  # a service that ran this long before dying gets the first delay again
SUPERVISOR_MODULE = "lastline_infra.platform"


def say(message: str) -> None:
    # Flushed at once: the supervisor's output is often a pipe (make, CI, tests).
    print(message, flush=True)


def _reachable_host(host: str) -> str:
    """A host to connect to: a service listening on every interface answers on loopback."""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_unspecified:
            return "127.0.0.1"
    return host


@dataclass(frozen=True)
class ServiceAddress:
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def service_address(name: str, env: Mapping[str, str]) -> ServiceAddress:
    """Where a service listens, read from the env vars its settings read (``<NAME>_HTTP_PORT``)."""
    prefix = name.upper()
    port = int(env.get(f"{prefix}_HTTP_PORT") or DEFAULT_PORTS[name])
    host = env.get(f"{prefix}_HTTP_HOST") or env.get("HTTP_HOST") or "127.0.0.1"
    return ServiceAddress(_reachable_host(host), port)


def service_env(name: str, endpoints: InfraEndpoints, base: Mapping[str, str]) -> dict[str, str]:
    """A service's environment: ``base`` plus the broker and the service's own database role.

    A ``<NAME>_DATABASE_URL`` already in ``base`` wins (a role of an external database).
    """
    env = dict(base)
    env["KAFKA_BOOTSTRAP_SERVERS"] = endpoints.kafka_bootstrap
    env.setdefault(f"{name.upper()}_DATABASE_URL", endpoints.service_database_url(name))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # start_new_session made the service its group's leader


def _ready_now(address: ServiceAddress) -> bool:
    conn = http.client.HTTPConnection(address.host, address.port, timeout=2)
    try:
        conn.request("GET", "/ready")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class ServiceProcess:
    """One service run as ``python -m lastline_<name>``: started, probed, stopped."""

    name: str
    address: ServiceAddress
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @classmethod
    def configure(
        cls, name: str, endpoints: InfraEndpoints, log_dir: Path, base_env: Mapping[str, str]
    ) -> ServiceProcess:
        env = service_env(name, endpoints, base_env)
        return cls(name, service_address(name, env), env, log_dir / f"{name}.log")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> int:
        """Start it in its own process group, so that Ctrl-C in a terminal reaches only the
        supervisor, which then stops the services itself; returns the pid."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"lastline_{self.name}"],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()
        return self.proc.pid

    def exit_code(self) -> int | None:
        """None while it runs (or was never started)."""
        return self.proc.poll() if self.proc is not None else None

    async def ready(self) -> bool:
        return await asyncio.to_thread(_ready_now, self.address)

    async def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, up to ``grace_s`` seconds for a clean exit, then SIGKILL; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
        return proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        return f"the end of {self.log_path}:\n{tail(self.log_path, lines)}"


async def wait_all_ready(
    services: Sequence[ServiceProcess], *, within_s: float, stop: asyncio.Event | None = None
) -> None:
    """Return once every service's ``/ready`` answers 200 (or ``stop`` is set); raise InfraError,
    with the end of its log, for a service that exits or is not ready in time."""
    deadline = time.monotonic() + within_s
    pending = list(services)
    while pending and not (stop is not None and stop.is_set()):
        for service in list(pending):
            if (code := service.exit_code()) is not None:
                raise InfraError(f"{service.name} exited with code {code}; {service.log_tail()}")
            if await service.ready():
                pending.remove(service)
        if pending and time.monotonic() >= deadline:
            late = pending[0]
            raise InfraError(f"{late.name} not ready after {within_s:.0f}s; {late.log_tail()}")
        await asyncio.sleep(0.25)


# --- run ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFiles:
    """Where ``run`` writes its logs and pid files, and where ``stop`` finds them."""

    log_dir: Path
    run_dir: Path

    @classmethod
    def of(cls, layout: Layout) -> RunFiles:
        return cls(layout.var_dir / "log", layout.var_dir / "run")

    @property
    def supervisor_pid(self) -> Path:
        return self.run_dir / "platform.pid"

    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"


def _live_pid(pid_file: Path, module: str) -> int | None:
    """The pid in ``pid_file`` if that process still runs ``python -m <module>`` (pids get reused)."""
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid) or module not in cmdline(pid):
        return None
    return pid


def _print_summary(endpoints: InfraEndpoints, services: Sequence[ServiceProcess], log_dir: Path) -> None:
    kafka_origin = "local" if endpoints.kafka_managed else "from KAFKA_BOOTSTRAP_SERVERS"
    postgres_origin = "local" if endpoints.postgres_managed else "from DATABASE_URL"
    lines = [
        "",
        "Lastline is running (Ctrl-C here, or `make stop` elsewhere, stops the services):",
        f"  {'Kafka':<14}{endpoints.kafka_bootstrap}  ({kafka_origin})",
        f"  {'PostgreSQL':<14}{redact_password(endpoints.database_url)}  ({postgres_origin})",
    ]
    for service in services:
        url = service.address.url
        lines.append(f"  {service.name:<14}{url}  docs {url}/docs  metrics {url}/metrics")
    lines += [
        f"  {'logs':<14}{log_dir}/<service>.log",
        "Demo data and the dashboard arrive with the service issues (no demo generator exists yet).",
        "",
    ]
    say("\n".join(lines))


@dataclass
class _Restarts:
    delay_s: float = FIRST_RESTART_DELAY_S
    due_at: float | None = None  # set while a dead service waits for its restart


async def supervise(services: Sequence[ServiceProcess], files: RunFiles, stop: asyncio.Event) -> None:
    """Until ``stop`` is set: restart a service that died, after a delay that doubles while it
    keeps dying (a crash loop must not eat the machine)."""
    restarts = {service.name: _Restarts() for service in services}
    while not stop.is_set():
        now = time.monotonic()
        for service in services:
            state = restarts[service.name]
            if state.due_at is not None:
                if now >= state.due_at:
                    state.due_at = None
                    files.pid_file(service.name).write_text(f"{service.start()}\n")
                    say(f"{time.strftime('%H:%M:%S')} {service.name} restarted (pid {service.pid})")
            elif (code := service.exit_code()) is not None:
                if now - service.started_at >= STABLE_AFTER_S:
                    state.delay_s = FIRST_RESTART_DELAY_S
                say(
                    f"{time.strftime('%H:%M:%S')} {service.name} exited with code {code}, restarting "
                    f"in {state.delay_s:.0f}s; {service.log_tail(5)}"
                )
                state.due_at = now + state.delay_s
                state.delay_s = min(state.delay_s * 2, MAX_RESTART_DELAY_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


async def _stop_all(services: Sequence[ServiceProcess], files: RunFiles) -> None:
    running = [service for service in services if service.exit_code() is None]
    if running:
        say(f"stopping {', '.join(service.name for service in running)}")
    codes = await asyncio.gather(*(service.stop() for service in running))
    for service, code in zip(running, codes, strict=True):
        say(f"{service.name} stopped (exit code {code})")
    for service in services:
        files.pid_file(service.name).unlink(missing_ok=True)


async def run(layout: Layout, names: Sequence[str] = SERVICES) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    files = RunFiles.of(layout)
    if (other := _live_pid(files.supervisor_pid, SUPERVISOR_MODULE)) is not None:
        raise InfraError(f"the platform already runs (pid {other}); `make stop` stops it")
    endpoints = await ensure_up(layout)
    services = [ServiceProcess.configure(n, endpoints, files.log_dir, os.environ) for n in names]
    for service in services:
        if port_in_use(service.address.host, service.address.port):
            raise InfraError(
                f"port {service.address.port} for {service.name} is taken: `make stop` if an earlier "
                f"run holds it, or set {service.name.upper()}_HTTP_PORT"
            )
    if stop.is_set():
        return 0
    files.run_dir.mkdir(parents=True, exist_ok=True)
    files.supervisor_pid.write_text(f"{os.getpid()}\n")
    try:
        for service in services:
            files.pid_file(service.name).write_text(f"{service.start()}\n")
        say(f"starting {', '.join(names)} (logs in {files.log_dir})")
        try:
            await wait_all_ready(services, within_s=READY_TIMEOUT_S, stop=stop)
        except InfraError as err:
            say(f"lastline platform: {err}")
            return 1
        if not stop.is_set():
            _print_summary(endpoints, services, files.log_dir)
            await supervise(services, files, stop)
        return 0
    finally:
        await _stop_all(services, files)
        files.supervisor_pid.unlink(missing_ok=True)


# --- stop -----------------------------------------------------------------------------------


async def stop_previous(layout: Layout) -> int:
    """Stop what an earlier ``run`` started, found through its pid files."""
    files = RunFiles.of(layout)
    stopped = False
    if (supervisor := _live_pid(files.supervisor_pid, SUPERVISOR_MODULE)) is not None:
        say(f"stopping the platform (pid {supervisor}) and its services")
        await terminate(supervisor, grace_s=STOP_GRACE_S + 10)
        stopped = True
    # Whatever is left belonged to a supervisor that was killed (or did not get to stop it).
    leftovers = {n: pid for n in SERVICES if (pid := _live_pid(files.pid_file(n), f"lastline_{n}"))}
    for name, pid in leftovers.items():
        say(f"stopping {name} (pid {pid})")
    await asyncio.gather(*(terminate(pid, grace_s=STOP_GRACE_S) for pid in leftovers.values()))
    for name in SERVICES:
        files.pid_file(name).unlink(missing_ok=True)
    files.supervisor_pid.unlink(missing_ok=True)
    if not (stopped or leftovers):
        say("nothing was running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lastline_infra.platform", description="Run the Lastline services."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start the services and supervise them until Ctrl-C")
    run_parser.add_argument(
        "services", nargs="*", metavar="SERVICE", help=f"only these ({', '.join(SERVICES)}); default all"
    )
    commands.add_parser("stop", help="stop the services started by an earlier `run`")
    args = parser.parse_args(argv)
    layout = Layout.default()
    try:
        if args.command == "stop":
            return asyncio.run(stop_previous(layout))
        if unknown := sorted(set(args.services) - set(SERVICES)):
            parser.error(f"unknown service {', '.join(unknown)}; choose from {', '.join(SERVICES)}")
        names = [n for n in SERVICES if n in args.services] if args.services else list(SERVICES)
        return asyncio.run(run(layout, names))
    except InfraError as err:
        print(f"lastline platform: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
