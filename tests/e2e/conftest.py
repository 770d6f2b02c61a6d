"""The four services as separate processes, started the way ``make run`` starts them
(``lastline_infra.platform``), each on a free port with its output in a temporary log."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from lastline_infra import SERVICES, InfraEndpoints
from lastline_infra.platform import ServiceProcess, wait_all_ready

# Several services migrating at once on a 2-core machine that other people share.
READY_WITHIN_S = 90.0

_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never the same one twice in a session."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def service_process(name: str, infra: InfraEndpoints, log_dir: Path, **env: str) -> ServiceProcess:
    """``name`` configured from the test environment (the ``infra`` fixture exports the
    servers), on a free port, plus ``env``."""
    base = dict(os.environ) | {f"{name.upper()}_HTTP_PORT": str(free_port())} | env
    return ServiceProcess.configure(name, infra, log_dir, base)


async def stop_all(services: list[ServiceProcess]) -> None:
    await asyncio.gather(*(service.stop(grace_s=10) for service in services))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def services(
    infra: InfraEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, ServiceProcess]]:
    """All four services, started together and ready; stopped at the end of the module if a
    test has not stopped them already."""
    log_dir = tmp_path_factory.mktemp("service-logs")
    running = {name: service_process(name, infra, log_dir) for name in SERVICES}
    try:
        for service in running.values():
            service.start()
        await wait_all_ready(list(running.values()), within_s=READY_WITHIN_S)
        yield running
    finally:
        await stop_all(list(running.values()))
