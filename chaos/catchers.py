"""What the outside world sees: an SMTP server (aiosmtpd, in this process) and a webhook endpoint
that count every message by its id, and volunteers who answer some of their proposal emails."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import hashlib
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiosmtpd.controller import Controller

# A volunteer retries for about a minute (an instance restarting, PostgreSQL coming back).
MAX_ATTEMPTS = 120
ACCEPT_LINK = re.compile(r"https?://[^\s\"<>]+?/v1/proposals/([^/\s\"<>]+)/accept")


@dataclass
class Proposal:
    message_id: str
    token: str


class MailCatcher:
    """Counts messages per Message-ID; proposal emails queue their accept token for the volunteers."""

    def __init__(self) -> None:
        self.message_ids: Counter[str] = Counter()
        self.templates: Counter[str] = Counter()
        self.proposals: deque[Proposal] = deque()
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        message_id = str(message.get("Message-ID", ""))
        with self._lock:
            self.message_ids[message_id] += 1
            first = self.message_ids[message_id] == 1
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        if first and (link := ACCEPT_LINK.search(text)):
            self.proposals.append(Proposal(message_id, link.group(1)))
        return "250 OK"

    def start(self, port: int) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.message_ids)


class WebhookCatcher:
    """A minimal HTTP/1.1 endpoint (keep-alive) answering 200 to every POST, counting ``webhook-id``."""

    def __init__(self) -> None:
        self.webhook_ids: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self._server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                await reader.readexactly(int(headers.get("content-length", "0")))
                parts = request_line.decode("latin-1").split()
                if len(parts) >= 2 and parts[0] == "POST":
                    self.webhook_ids[headers.get("webhook-id", "")] += 1
                    self.paths[parts[1]] += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()


@dataclass
class Volunteers:
    """Answer a share of proposal emails through matching's signed links, as volunteers would: accept
    (with the conflict attestation) or decline, on any matching instance, retrying while it is down."""

    matching_urls: list[str]
    accept_percent: int
    decline_percent: int
    seed: int
    outcomes: Counter[str] = field(default_factory=Counter)
    attempts_failed: int = 0

    def choice(self, message_id: str) -> str | None:
        digest = hashlib.sha256(f"{self.seed}:{message_id}".encode()).digest()
        roll = int.from_bytes(digest[:4], "big") % 100
        if roll < self.accept_percent:
            return "accept"
        if roll < self.accept_percent + self.decline_percent:
            return "decline"
        return None

    async def run(self, mail: MailCatcher, stop: asyncio.Event, paused: asyncio.Event | None = None) -> None:
        """Until ``stop`` is set and every chosen proposal has been answered (or given up on); while
        ``paused`` is set, new proposals wait (answers already under way are finished)."""
        retry: deque[tuple[Proposal, str, int]] = deque()
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                work: list[tuple[Proposal, str, int]] = list(retry)
                retry.clear()
                while mail.proposals and not (paused is not None and paused.is_set()):
                    proposal = mail.proposals.popleft()
                    if (answer := self.choice(proposal.message_id)) is not None:
                        work.append((proposal, answer, 0))
                for proposal, answer, attempt in work:
                    if await self._answer(client, proposal, answer, attempt):
                        continue
                    if attempt < MAX_ATTEMPTS:
                        retry.append((proposal, answer, attempt + 1))
                    else:
                        self.outcomes["gave_up"] += 1
                if stop.is_set() and not mail.proposals and not retry:
                    return
                await asyncio.sleep(0.5)

    async def _answer(self, client: httpx.AsyncClient, proposal: Proposal, answer: str, attempt: int) -> bool:
        base = self.matching_urls[attempt % len(self.matching_urls)]
        body: dict[str, Any] = {"conflict_attested": True} if answer == "accept" else {"reason": "other"}
        try:
            response = await client.post(f"{base}/v1/proposals/{proposal.token}/{answer}", json=body)
        except httpx.HTTPError:
            self.attempts_failed += 1
            return False
        if response.status_code >= 500:
            self.attempts_failed += 1
            return False
        outcome = "unexpected"
        with contextlib.suppress(ValueError):
            outcome = str(response.json().get("outcome", "unexpected"))
        self.outcomes[f"{answer}:{outcome}"] += 1
        return True
