"""Two instances of each service as separate OS processes (``lastline_infra.platform.ServiceProcess``):
started, SIGKILLed, restarted, and brought back by a small supervisor when one dies on its own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lastline_infra import SERVICES, InfraEndpoints
from lastline_infra.platform import ServiceProcess, wait_all_ready
from lastline_infra.processes import cmdline, pid_alive, read_pid

RESTART_DELAY_S = 1.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Instance:
    label: str  # "matching-2"
    process: ServiceProcess
    held: bool = False  # being killed and restarted on purpose: the supervisor keeps off

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def url(self) -> str:
        return self.process.address.url


@dataclass
class Fleet:
    instances: list[Instance]
    run_dir: Path  # a pid file per instance: what a cleanup finds if this process is killed
    kills: Counter[str] = field(default_factory=Counter)
    unexpected_exits: Counter[str] = field(default_factory=Counter)

    @classmethod
    def configure(
        cls,
        endpoints: InfraEndpoints,
        log_dir: Path,
        base_env: Mapping[str, str],
        service_env: Mapping[str, Mapping[str, str]],
        per_service: int = 2,
    ) -> Fleet:
        """``per_service`` instances of every service, each on a free port with its own log;
        instances of one service share its name, consumer groups and schema."""
        instances = []
        for name in SERVICES:
            for number in range(1, per_service + 1):
                label = f"{name}-{number}"
                env = dict(base_env) | dict(service_env.get(name, {}))
                env[f"{name.upper()}_HTTP_PORT"] = str(free_port())
                process = ServiceProcess.configure(name, endpoints, log_dir, env)
                process.log_path = log_dir / f"{label}.log"
                instances.append(Instance(label, process))
        return cls(instances, log_dir.parent / "run")

    def of(self, service: str) -> list[Instance]:
        return [i for i in self.instances if i.name == service]

    def first(self, service: str) -> Instance:
        return self.of(service)[0]

    def _start(self, instance: Instance) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / f"{instance.label}.pid").write_text(f"{instance.process.start()}\n")

    def start(self) -> None:
        for instance in self.instances:
            self._start(instance)

    async def ready(self, within_s: float) -> None:
        await wait_all_ready([i.process for i in self.instances], within_s=within_s)

    async def kill(self, instance: Instance, *, down_s: float = RESTART_DELAY_S) -> None:
        """SIGKILL the instance's process group (no drain, no shutdown hooks), then start it again."""
        instance.held = True
        try:
            proc = instance.process.proc
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await asyncio.to_thread(proc.wait)
            self.kills[instance.name] += 1
            await asyncio.sleep(down_s)
            self._start(instance)
        finally:
            instance.held = False

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart an instance that exited on its own (a start while PostgreSQL was down, say)."""
        while not stop.is_set():
            for instance in self.instances:
                if instance.held or instance.process.exit_code() is None:
                    continue
                self.unexpected_exits[instance.label] += 1
                instance.held = True
                asyncio.get_running_loop().call_later(RESTART_DELAY_S, self._restart, instance)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    def _restart(self, instance: Instance) -> None:
        self._start(instance)
        instance.held = False

    async def recovered(self, within_s: float) -> bool:
        """Whether every instance answers ``/ready`` within ``within_s`` (instances that exit on the
        way are the supervisor's to restart)."""
        deadline = asyncio.get_running_loop().time() + within_s
        while asyncio.get_running_loop().time() < deadline:
            states = await asyncio.gather(*(i.process.ready() for i in self.instances))
            if all(states):
                return True
            await asyncio.sleep(1)
        return False

    def running(self) -> int:
        return sum(1 for i in self.instances if i.process.exit_code() is None)

    async def stop(self) -> None:
        """SIGTERM everything (SIGKILL after a grace period): the run is over, or it failed."""
        await asyncio.gather(*(i.process.stop(grace_s=15) for i in self.instances))
        for instance in self.instances:
            (self.run_dir / f"{instance.label}.pid").unlink(missing_ok=True)


def kill_leftovers(run_dir: Path) -> list[int]:
    """SIGKILL the service processes a killed chaos run left behind (found through its pid files)."""
    killed = []
    for pid_file in run_dir.glob("*.pid"):
        pid = read_pid(pid_file)
        if pid is not None and pid_alive(pid) and any("lastline_" in part for part in cmdline(pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
                killed.append(pid)
        pid_file.unlink(missing_ok=True)
    return killed
