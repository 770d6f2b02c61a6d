"""Reading a child process's output as it comes (the platform supervisor's, in the e2e tests)."""

from __future__ import annotations

import asyncio


async def read_until(stream: asyncio.StreamReader, marker: str, within_s: float) -> str:
    """The output up to and including the line that contains ``marker``."""
    lines: list[str] = []
    try:
        async with asyncio.timeout(within_s):
            while line := (await stream.readline()).decode():
                lines.append(line)
                if marker in line:
                    return "".join(lines)
    except TimeoutError:
        pass
    raise AssertionError(f"no {marker!r} within {within_s:.0f}s; output so far:\n{''.join(lines)}")
