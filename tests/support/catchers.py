"""Real servers that catch what notifications sends: an SMTP server (aiosmtpd) that keeps every
message, and an HTTP endpoint that plays a partner's webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


class Mailbox:
    """aiosmtpd handler: keeps every message; refuses recipients at ``refuse.example.net``."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.port = 0
        self.delay_s = 0.0  # how long the server takes to accept a message

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.endswith("@refuse.example.net"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay_s)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


def plain_text(message: EmailMessage) -> str:
    """The message's text part, decoded (transfer encodings undone)."""
    body = message.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage), message
    return str(body.get_content())


def readable(message: EmailMessage) -> str:
    """Everything a reader of ``message`` sees: its headers and every text part, decoded."""
    parts = [f"{name}: {value}" for name, value in message.items()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            parts.append(str(part.get_content()))
    return "\n".join(parts)


@contextlib.contextmanager
def smtp_catcher(port: int) -> Iterator[Mailbox]:
    """A :class:`Mailbox` served over SMTP on 127.0.0.1:``port`` (its own thread)."""
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = controller.port
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class Receiver:
    """A partner's webhook endpoint: ``/flaky`` fails three times then accepts, ``/slow`` never
    answers in time, any other name accepts."""

    port: int = 0
    requests: dict[str, list[tuple[dict[str, str], bytes]]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            name = request.path_params["name"]
            body = await request.body()
            self.attempts[name] = self.attempts.get(name, 0) + 1
            if name == "slow":
                await asyncio.sleep(3)
            if name == "flaky" and self.attempts[name] <= 3:
                return Response(status_code=503)
            self.requests.setdefault(name, []).append((dict(request.headers), body))
            return Response(status_code=204)

        return Starlette(routes=[Route("/{name}", hook, methods=["POST"])])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


@contextlib.asynccontextmanager
async def webhook_receiver(port: int) -> AsyncIterator[Receiver]:
    """A :class:`Receiver` served by uvicorn on 127.0.0.1:``port`` in the running event loop."""
    found = Receiver(port=port)
    server = uvicorn.Server(
        uvicorn.Config(found.app(), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the webhook receiver did not start"
        await asyncio.sleep(0.02)
    try:
        yield found
    finally:
        server.should_exit = True
        await task
