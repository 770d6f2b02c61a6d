"""``python -m lastline_infra.mailcatcher``: a local SMTP server that keeps what it receives, and a page
to read it (``make run`` starts it; notifications sends its email there).

SMTP on 127.0.0.1:1025, web on 127.0.0.1:8025 (``--smtp-port``/``--http-port``, or
``MAILCATCHER_SMTP_PORT``/``MAILCATCHER_HTTP_PORT``). The last :data:`KEEP` messages stay in memory:
a restart forgets them. Pages: ``/`` lists messages newest first, ``/messages/<id>`` shows one (the
plain-text part escaped, its links clickable; the HTML part in a sandboxed iframe, so no script in a
message runs and nothing it links loads); ``/api/messages`` is the same as JSON (``?after=<id>``: only
newer ones, oldest first, for pollers such as the demo's volunteers).

Mailpit (what ``compose.yaml`` uses) is not on PyPI and its build needs npm, hence this small one.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import itertools
import os
import re
import signal
import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

KEEP = 1000
DEFAULT_SMTP_PORT = 1025
DEFAULT_HTTP_PORT = 8025
# The pages inline their style and nothing else; an email's own HTML loads nothing (no images, fonts
# or frames from the network): it is rendered from srcdoc in a sandbox that inherits this policy.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
)
_URL = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    text: str | None
    html: str | None
    size: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "from": self.mail_from,
            "to": list(self.rcpt_tos),
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "size": self.size,
        }


def _part(message: EmailMessage, subtype: str) -> str | None:
    body = message.get_body(preferencelist=(subtype,))
    if body is None or body.get_content_type() != f"text/{subtype}":
        return None
    try:
        content = str(body.get_content())
    except (LookupError, ValueError):  # an unknown charset: still show something
        payload = body.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content.replace("\r\n", "\n")


def parse(number: int, mail_from: str, rcpt_tos: Iterable[str], raw: bytes, received_at: datetime) -> Message:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)  # policy.default makes EmailMessage
    return Message(
        id=number,
        received_at=received_at,
        mail_from=mail_from,
        rcpt_tos=tuple(rcpt_tos),
        subject=str(message.get("subject", "")),
        text=_part(message, "plain"),
        html=_part(message, "html"),
        size=len(raw),
    )


class Mailbox:
    """The last ``keep`` messages; also the aiosmtpd handler that fills it."""

    def __init__(self, keep: int = KEEP) -> None:
        self.keep = keep
        self._messages: deque[Message] = deque(maxlen=keep)
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self._messages.append(
            parse(
                next(self._numbers),
                str(envelope.mail_from or ""),
                (str(r) for r in envelope.rcpt_tos),
                raw,
                datetime.now(UTC),
            )
        )
        return "250 Message accepted for delivery"

    def newest_first(self) -> list[Message]:
        return list(reversed(self._messages))

    def after(self, number: int) -> list[Message]:
        return [m for m in self._messages if m.id > number]

    def get(self, number: int) -> Message | None:
        return next((m for m in self._messages if m.id == number), None)


# -- web ---------------------------------------------------------------------------------------------


def _page(title: str, body: str, *, refresh: bool = False) -> HTMLResponse:
    meta = '<meta http-equiv="refresh" content="5">' if refresh else ""
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{meta}<title>{html.escape(title)}</title>
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }}
pre {{ white-space: pre-wrap; background: #f6f6f6; padding: 1rem; }}
iframe {{ width: 100%; height: 36rem; border: 1px solid #ccc; }}
.muted {{ color: #666; }}
</style></head><body>{body}</body></html>"""
    return HTMLResponse(document, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


def _linkify(text: str) -> str:
    """``text`` escaped, with its http(s) URLs as links (each URL escaped too, so it is a safe href)."""
    out, start = [], 0
    for match in _URL.finditer(text):
        url = html.escape(match[0], quote=True)
        out += [html.escape(text[start : match.start()]), f'<a href="{url}" rel="noreferrer">{url}</a>']
        start = match.end()
    out.append(html.escape(text[start:]))
    return "".join(out)


def _recipients(message: Message) -> str:
    return html.escape(", ".join(message.rcpt_tos))


def build_app(mailbox: Mailbox) -> Starlette:
    async def index(_: Request) -> Response:
        rows = "".join(
            f'<tr><td class="muted">{m.received_at:%H:%M:%S}</td><td>{_recipients(m)}</td>'
            f'<td><a href="/messages/{m.id}">{html.escape(m.subject or "(no subject)")}</a></td></tr>'
            for m in mailbox.newest_first()
        )
        body = (
            f"<h1>Mail catcher</h1><p class=muted>The last {mailbox.keep} messages sent to this SMTP server, "
            "newest first; the page refreshes every 5 s. JSON: <a href=/api/messages>/api/messages</a>.</p>"
            f"<table><tr><th>received</th><th>to</th><th>subject</th></tr>{rows}</table>"
        )
        return _page("Mail catcher", body, refresh=True)

    async def show(request: Request) -> Response:
        message = mailbox.get(int(request.path_params["number"]))
        if message is None:
            return _page("Not found", "<p>No such message (only the last ones are kept).</p>")
        parts = []
        if message.text is not None:
            parts.append(f"<h2>Plain text</h2><pre>{_linkify(message.text)}</pre>")
        if message.html is not None:
            # srcdoc is an attribute: escaped once here, parsed as HTML inside the sandbox (no scripts,
            # no forms, no same origin: nothing in a message can act on this page).
            parts.append(
                f'<h2>HTML</h2><iframe sandbox referrerpolicy="no-referrer" '
                f'srcdoc="{html.escape(message.html, quote=True)}"></iframe>'
            )
        head = (
            f'<p><a href="/">&larr; all messages</a></p><h1>{html.escape(message.subject)}</h1>'
            f"<p class=muted>from {html.escape(message.mail_from)} to {_recipients(message)}"
            f" at {message.received_at:%Y-%m-%d %H:%M:%S} UTC</p>"
        )
        return _page(message.subject or "Message", head + "".join(parts))

    async def api_list(request: Request) -> Response:
        after = request.query_params.get("after")
        if after is not None and after.isdigit():
            messages = mailbox.after(int(after))
        else:
            messages = mailbox.newest_first()
        return JSONResponse({"messages": [m.as_json() for m in messages]})

    async def api_one(request: Request) -> Response:
        message = mailbox.get(int(request.path_params["number"]))
        if message is None:
            return JSONResponse({"detail": "no such message"}, status_code=404)
        return JSONResponse(message.as_json())

    async def ready(_: Request) -> Response:
        return JSONResponse({"status": "ready"})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/messages/{number:int}", show),
            Route("/api/messages", api_list),
            Route("/api/messages/{number:int}", api_one),
            Route("/health", ready),
            Route("/ready", ready),
        ]
    )


# -- process -----------------------------------------------------------------------------------------


async def serve(host: str, smtp_port: int, http_port: int, keep: int = KEEP) -> None:
    """Both servers until SIGTERM or Ctrl-C (uvicorn's handlers end the web server; SMTP follows)."""
    mailbox = Mailbox(keep)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(mailbox, hostname="lastline-mailcatcher", enable_SMTPUTF8=True), host, smtp_port
    )
    config = uvicorn.Config(build_app(mailbox), host=host, port=http_port, log_level="warning")
    print(f"mail catcher: SMTP on {host}:{smtp_port}, web on http://{host}:{http_port}", flush=True)
    try:
        await uvicorn.Server(config).serve()
    finally:
        smtp.close()
        await smtp.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lastline_infra.mailcatcher", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("MAILCATCHER_HOST", "127.0.0.1"))
    smtp_default = int(os.environ.get("MAILCATCHER_SMTP_PORT") or DEFAULT_SMTP_PORT)
    http_default = int(os.environ.get("MAILCATCHER_HTTP_PORT") or DEFAULT_HTTP_PORT)
    parser.add_argument("--smtp-port", type=int, default=smtp_default)
    parser.add_argument("--http-port", type=int, default=http_default)
    parser.add_argument("--keep", type=int, default=KEEP, help="messages kept in memory")
    args = parser.parse_args(argv)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown under the handler it found: a no-op
    # here, so that a clean stop exits 0 (a supervisor reads -15 as a crash).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    asyncio.run(serve(args.host, args.smtp_port, args.http_port, args.keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
