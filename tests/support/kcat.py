"""kcat (Debian's ``kcat``, on librdkafka) as a partner's Kafka producer: a client that shares no
code with Lastline, to show that the documented wire format is all a partner needs."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence

import pytest

INSTALL_HINT = "kcat is not installed: apt-get install kcat (.ci/run installs it)"


async def kcat_produce(
    bootstrap: str, topic: str, *, key: str, headers: Sequence[tuple[str, str]], value: str
) -> None:
    """Publish one record with ``kcat -P`` and wait until the broker acknowledged it."""
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail(INSTALL_HINT)
    assert "\n" not in value, "kcat reads one record per line"
    args = [kcat, "-P", "-b", bootstrap, "-t", topic, "-k", key]
    # Java's partitioner (murmur2), as Kafka's own clients use: a key lands where theirs would.
    args += ["-X", "partitioner=murmur2_random"]
    for name, text in headers:
        args += ["-H", f"{name}={text}"]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(value.encode() + b"\n"), 30)
    assert process.returncode == 0, out.decode()
    assert b"ERROR" not in out, out.decode()
