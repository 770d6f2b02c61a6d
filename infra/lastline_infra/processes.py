"""Small process, port and polling helpers shared by the Kafka and PostgreSQL launchers."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lastline_infra.errors import InfraError


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited child of this process) counts as gone."""
    with contextlib.suppress(ChildProcessError, OSError):
        # Reap it if it is our own exited child, otherwise kill(pid, 0) would still succeed.
        os.waitpid(pid, os.WNOHANG)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # /proc/<pid>/stat: "pid (comm) STATE ..."; comm may hold spaces, so split after ")".
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def pid_exists(pid: int) -> bool:
    """True while the kernel knows ``pid``, zombies included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


async def run_captured(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> tuple[int, str]:
    """Run a short-lived program; return its exit code and combined output.

    If the caller is cancelled (a sibling step failed), the program is killed rather than left
    running on its own (an orphaned mvn would keep writing into a folder the next run reuses).
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        **popen,
    )
    try:
        out, _ = await proc.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc.returncode if proc.returncode is not None else -1, out.decode(errors="replace")


def spawn_detached(
    argv: Sequence[str], log_path: Path, cwd: Path, env: Mapping[str, str] | None = None
) -> int:
    """Start a long-lived server in its own session with output to ``log_path``; return its pid.

    Own session and no inherited stdio: it outlives this process and never holds a caller's pipe
    (CI waits for its pipes to close), and Ctrl-C in a terminal does not reach it.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.pid


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    within_s: float,
    what: str,
    interval: float = 0.25,
    give_up: Callable[[], str | None] | None = None,
) -> None:
    """Poll ``check`` until it returns True or ``within_s`` seconds pass (then raise InfraError).

    ``give_up`` returns a reason to stop early (the server process died), or None to keep going.
    """
    deadline = time.monotonic() + within_s
    while True:
        if await check():
            return
        if give_up is not None and (reason := give_up()) is not None:
            raise InfraError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            raise InfraError(f"{what}: not ready after {within_s:.0f}s")
        await asyncio.sleep(interval)


async def terminate(pid: int, *, grace_s: float) -> None:
    """SIGTERM, wait up to ``grace_s`` seconds for a clean exit, then SIGKILL; return once gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    killed = False
    while pid_alive(pid):
        if not killed and time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed = True
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def file_lock(path: Path) -> AsyncIterator[None]:
    """An exclusive lock between processes (several developers share one var/ folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
