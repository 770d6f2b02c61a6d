"""The demo's volunteers: they read the proposals emailed to them and answer, as people would.

They poll the mail catcher's ``/api/messages`` (``make run`` starts it), find the accept link of each
``match-proposed`` email, wait a little, and accept most proposals (with the conflict attestation) or
decline with a reason, through the same signed links and matching endpoints a person's browser uses.
Following the emails, rather than reading ``matches`` and signing links with the shared secret, puts
the whole chain under the demo: matching's proposal, notifications' email and its links (and their
public URL), the answer, the placement. It needs no secret and no access to internal topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import Callable
from typing import Any

import httpx

from lastline_shared.contracts.enums import DeclineReason

PROPOSAL_LINK = re.compile(r"(https?://[^\s<>\"']+/v1/proposals/[A-Za-z0-9._~-]+)/accept")
"""The accept link of a proposal email; the decline link is the same with ``/decline``."""
_ORIGIN = re.compile(r"^https?://[^/]+")
DECLINE_REASONS = (
    (DeclineReason.SCHEDULE, 35),
    (DeclineReason.NO_CAPACITY, 30),
    (DeclineReason.CONFLICT_OF_INTEREST, 10),
    (DeclineReason.DISTANCE, 10),
    (DeclineReason.PERSONAL, 10),
    (DeclineReason.OUTSIDE_EXPERTISE, 5),
)
POLL_EVERY_S = 1.0


def proposal_links(message: dict[str, Any]) -> list[str]:
    """Each proposal in a caught message, as the link without its ``/accept`` or ``/decline``."""
    text = message.get("text") or message.get("html") or ""
    return list(dict.fromkeys(match[1] for match in PROPOSAL_LINK.finditer(text)))


class Volunteers:
    def __init__(
        self,
        mail_url: str,
        *,
        accept_share: float = 0.85,
        answer_within_s: float = 8.0,
        seed: int = 0,
        matching_url: str | None = None,
    ) -> None:
        """``matching_url``: where to send the answers when the links' own address (the public one) is
        not reachable from here (in Docker, ``http://matching:8002``)."""
        self.mail_url = mail_url.rstrip("/")
        self.matching_url = matching_url.rstrip("/") if matching_url else None
        self.accept_share = accept_share
        self.answer_within_s = answer_within_s
        self._rng = random.Random(seed)  # noqa: S311 (not secrets)
        self._seen = 0
        self._answered: set[str] = set()

    async def run(self, stop: asyncio.Event, on_answer: Callable[[str], None]) -> None:
        """Until ``stop``: read new messages every second, answer each proposal once after a while."""
        pending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=15) as client:
            while not stop.is_set():
                for link in await self._new_proposals(client):
                    delay = self._rng.uniform(0.2, 1.0) * self.answer_within_s
                    accept = self._rng.random() < self.accept_share
                    task = asyncio.create_task(self._answer(client, link, accept, delay, on_answer))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_EVERY_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _new_proposals(self, client: httpx.AsyncClient) -> list[str]:
        try:
            response = await client.get(f"{self.mail_url}/api/messages", params={"after": self._seen})
            response.raise_for_status()
        except httpx.HTTPError:
            return []  # the catcher restarting: try again next time
        links = []
        for message in response.json()["messages"]:
            self._seen = max(self._seen, int(message["id"]))
            links += [link for link in proposal_links(message) if link not in self._answered]
        self._answered.update(links)
        return links

    async def _answer(
        self,
        client: httpx.AsyncClient,
        link: str,
        accept: bool,
        delay: float,
        on_answer: Callable[[str], None],
    ) -> None:
        await asyncio.sleep(delay)
        if self.matching_url is not None:
            link = _ORIGIN.sub(self.matching_url, link, count=1)
        if accept:
            body: dict[str, Any] = {"conflict_attested": True}
        else:
            reasons = [r for r, _ in DECLINE_REASONS]
            body = {"reason": self._rng.choices(reasons, [w for _, w in DECLINE_REASONS])[0].value}
        try:
            response = await client.post(
                f"{link}/{'accept' if accept else 'decline'}",
                json=body,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError:
            on_answer("failed")
            return
        if response.status_code == 409:
            on_answer("too_late")  # expired, withdrawn, or someone else accepted an urgent case first
        elif response.status_code == 404:
            on_answer("unknown")  # a proposal of another matching on a shared broker (tests)
        elif response.status_code == 200:
            on_answer(str(response.json()["outcome"]))
        else:
            on_answer("failed")
