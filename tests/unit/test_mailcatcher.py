"""The local mail catcher: real SMTP in, JSON and pages out, a message's HTML never active on the page."""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
import socket
from collections.abc import AsyncIterator
from email.message import EmailMessage

import httpx
import pytest
import pytest_asyncio
from aiosmtplib import SMTP

from lastline_infra.mailcatcher import CSP, Mailbox, serve

HOSTILE_HTML = (
    '<p onclick="steal()">Hi</p><script>alert(document.cookie)</script>"><img src=x onerror=alert(1)>'
)
LINK = "http://127.0.0.1:8002/v1/proposals/eyJ0.eyJw.c2ln/accept?x=1&y=2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest_asyncio.fixture(loop_scope="session")
async def catcher() -> AsyncIterator[tuple[int, str]]:
    """The catcher's SMTP port and web URL, served in this event loop."""
    smtp_port, http_port = free_port(), free_port()
    task = asyncio.create_task(serve("127.0.0.1", smtp_port, http_port, keep=3))
    url = f"http://127.0.0.1:{http_port}"
    async with httpx.AsyncClient() as client:
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{url}/ready")).status_code == 200:
                    break
            await asyncio.sleep(0.05)
    yield smtp_port, url
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def message(subject: str, *, text: str = "Hello", html_part: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Lastline <noreply@lastline.invalid>"
    mail["To"] = "dana.whitfield@example.org"
    mail["Subject"] = subject
    mail.set_content(text)
    if html_part is not None:
        mail.add_alternative(html_part, subtype="html")
    return mail


async def send(port: int, *messages: EmailMessage) -> None:
    async with SMTP(hostname="127.0.0.1", port=port) as smtp:
        for mail in messages:
            await smtp.send_message(mail)


@pytest.mark.asyncio(loop_scope="session")
async def test_caught_messages_are_listed_newest_first_and_only_the_last_are_kept(
    catcher: tuple[int, str],
) -> None:
    port, url = catcher
    await send(port, *(message(f"message {n}", text=f"body {n} ünïcode") for n in range(1, 5)))
    async with httpx.AsyncClient(base_url=url) as client:
        listed = (await client.get("/api/messages")).json()["messages"]
        assert [m["subject"] for m in listed] == ["message 4", "message 3", "message 2"]  # keep=3
        newest = listed[0]
        assert newest["to"] == ["dana.whitfield@example.org"]
        assert newest["from"] == "noreply@lastline.invalid"
        assert newest["text"] == "body 4 ünïcode\n"
        assert newest["html"] is None
        after = (await client.get("/api/messages", params={"after": listed[1]["id"]})).json()["messages"]
        assert [m["subject"] for m in after] == ["message 4"]
        one = await client.get(f"/api/messages/{newest['id']}")
        assert one.json()["subject"] == "message 4"
        assert (await client.get("/api/messages/999999")).status_code == 404
        page = await client.get("/")
        assert page.text.index("message 4") < page.text.index("message 3")
        assert "message 1" not in page.text


@pytest.mark.asyncio(loop_scope="session")
async def test_a_message_is_shown_safely(catcher: tuple[int, str]) -> None:
    port, url = catcher
    subject = "<b>New case</b> & more"
    await send(
        port,
        message(subject, text=f"Accept this case:\n{LINK}\n<script>x()</script>", html_part=HOSTILE_HTML),
    )
    async with httpx.AsyncClient(base_url=url) as client:
        caught = (await client.get("/api/messages")).json()["messages"][0]
        assert caught["html"].strip() == HOSTILE_HTML
        page = await client.get(f"/messages/{caught['id']}")
    assert page.headers["content-security-policy"] == CSP
    assert "script-src" not in CSP  # default-src 'none': no script runs on the page
    body = page.text
    # Nothing from the message is markup on the page itself: only the iframe's srcdoc holds it, escaped.
    assert "<script>" not in body
    assert "onerror=" not in body.replace(html.escape("onerror="), "")
    assert html.escape(subject) in body
    frame = re.search(r'<iframe sandbox referrerpolicy="no-referrer" srcdoc="([^"]*)"></iframe>', body)
    assert frame is not None, body
    assert html.unescape(frame[1]).strip() == HOSTILE_HTML
    # The plain-text part is escaped, its link clickable (the & escaped in the href as well).
    escaped_link = html.escape(LINK)
    assert f'<a href="{escaped_link}" rel="noreferrer">{escaped_link}</a>' in body
    assert "&lt;script&gt;x()&lt;/script&gt;" in body


def test_a_message_without_parts_or_with_an_odd_charset_still_shows() -> None:
    mailbox = Mailbox(keep=2)
    raw = (
        b"From: a@example.org\r\nSubject: odd\r\nContent-Type: text/plain; charset=x-unknown\r\n"
        b"\r\nhi there\r\n"
    )
    envelope = type(
        "Envelope", (), {"original_content": raw, "mail_from": "a@example.org", "rcpt_tos": ["b@x.org"]}
    )
    assert asyncio.run(mailbox.handle_DATA(None, None, envelope)).startswith("250")  # type: ignore[arg-type]
    [caught] = mailbox.newest_first()
    assert (caught.subject, caught.text, caught.rcpt_tos) == ("odd", "hi there\n", ("b@x.org",))
