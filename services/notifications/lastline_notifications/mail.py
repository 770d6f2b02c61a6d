"""Email: Jinja2 templates rendered as plain text and HTML, sent over SMTP with aiosmtplib.

Each message template (``templates/email/<language>/<name>.jinja``) is written once and rendered
twice: with ``layout.txt``/``macros.txt`` for the text part and ``layout.html``/``macros.html`` (and
autoescaping) for the HTML part. Its ``subject`` block becomes the subject. A language without the
template falls back to English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import charset as charsets
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any, Literal

import aiosmtplib
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pydantic import SecretStr

from lastline_notifications.deliveries import DeliveryError
from lastline_shared.contracts.enums import DeliveryFailure

TEMPLATES = Path(__file__).parent / "templates" / "email"

_FOOTERS = {
    "eng": "Lastline connects detained people with pro bono counsel. You receive this because you "
    "volunteer with a partner organisation of the network.",
    "spa": "Lastline conecta a personas detenidas con representación legal gratuita. Recibe este "
    "mensaje porque colabora como voluntario/a con una organización de la red.",
}
_HTML_LANG = {"eng": "en", "spa": "es"}
_BLANK_LINES = re.compile(r"\n{3,}")
# Body lines up to this long (bytes) go as they are (7bit / 8bit), longer ones quoted-printable: the
# choice EmailMessage.set_content makes with the default policy (its base64 branch is for mostly
# non-ASCII text, which these bodies are not).
_MAX_LINE = 78


@dataclass(frozen=True)
class Rendered:
    language: str
    subject: str
    text: str
    html: str


class Renderer:
    def __init__(self, directory: Path = TEMPLATES) -> None:
        self._dir = directory
        options: dict[str, Any] = {
            "loader": FileSystemLoader(directory),
            "trim_blocks": True,
            "lstrip_blocks": True,
            "undefined": StrictUndefined,
        }
        # The templates ship with the code: no need to stat them again on every message.
        options["auto_reload"] = False
        self._text = Environment(autoescape=False, **options)  # noqa: S701  (plain text, never HTML)
        self._html = Environment(autoescape=True, **options)
        self._languages: dict[tuple[str, str], str] = {}

    def language_of(self, template: str, preferred: str) -> str:
        key = (template, preferred)
        if (found := self._languages.get(key)) is None:
            found = preferred if (self._dir / preferred / f"{template}.jinja").exists() else "eng"
            self._languages[key] = found
        return found

    def render(self, template: str, preferred_language: str, view: dict[str, Any]) -> Rendered:
        language = self.language_of(template, preferred_language)
        name = f"{language}/{template}.jinja"
        common = {"footer": _FOOTERS.get(language, _FOOTERS["eng"]), **view}
        text_template = self._text.get_template(name)
        context = text_template.new_context({**common, "layout": "layout.txt", "macros": "macros.txt"})
        subject = " ".join("".join(text_template.blocks["subject"](context)).split())
        text = text_template.render(layout="layout.txt", macros="macros.txt", **common)
        text = _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()
        html = self._html.get_template(name).render(
            layout="layout.html",
            macros="macros.html",
            subject=subject,
            html_lang=_HTML_LANG.get(language, "en"),
            **common,
        )
        return Rendered(language, subject, text + "\n", html)


def compose(
    rendered: Rendered, *, sender: str, to_name: str | None, to_address: str, message_id: str
) -> Message:
    """The MIME message: text first, HTML as the alternative. The Message-ID is the delivery's, so
    a message resent after a crash is recognisably the same message.

    Built with the ``compat32`` classes: the same message as ``EmailMessage`` builds, for a quarter of
    the CPU (the modern API parses every header it is given, its own included). Addresses that are not
    ASCII need SMTPUTF8, which only ``EmailMessage`` can write: those take that route."""
    headers = (sender, to_name or "", to_address, rendered.subject, message_id)
    if any("\r" in value or "\n" in value for value in headers):
        raise ValueError("header values may not contain line breaks")
    if not (sender.isascii() and to_address.isascii()):
        return _compose_smtputf8(
            rendered, sender=sender, to_name=to_name, to_address=to_address, message_id=message_id
        )
    message = MIMEMultipart("alternative", policy=compat32)
    message["From"] = sender
    message["To"] = formataddr((to_name, to_address)) if to_name else to_address
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{message_id}@lastline.invalid>"
    message["X-Lastline-Notification"] = message_id
    message["Content-Language"] = _HTML_LANG.get(rendered.language, "en")
    message.attach(_part(rendered.text, "plain"))
    message.attach(_part(rendered.html, "html"))
    return message


def _charset(body_encoding: int | None) -> charsets.Charset:
    charset = charsets.Charset("utf-8")
    charset.body_encoding = body_encoding  # type: ignore[assignment]  # None is "as is" (7bit/8bit)
    return charset


_AS_IS, _QUOTED_PRINTABLE = _charset(None), _charset(charsets.QP)


def _part(body: str, subtype: str) -> MIMENonMultipart:
    longest = max((len(line.encode()) for line in body.splitlines()), default=0)
    part = MIMENonMultipart("text", subtype, policy=compat32, charset="utf-8")
    part.set_payload(body, _QUOTED_PRINTABLE if longest > _MAX_LINE else _AS_IS)
    del part["MIME-Version"]  # the message has it; a part needs none
    return part


def _compose_smtputf8(
    rendered: Rendered, *, sender: str, to_name: str | None, to_address: str, message_id: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    # An Address, not formataddr() (it encodes a name, then the address too, as ASCII), built from
    # its parts (its addr_spec parser refuses a local part that is not ASCII).
    user, _, domain = to_address.rpartition("@")
    message["To"] = Address(display_name=to_name or "", username=user, domain=domain)
    message["Subject"] = rendered.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{message_id}@lastline.invalid>"
    message["X-Lastline-Notification"] = message_id
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    message["Content-Language"] = _HTML_LANG.get(rendered.language, "en")  # set_content drops Content-*
    return message


class Mailer:
    """One SMTP connection, opened on first use and again after it dropped."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: Literal["none", "starttls", "tls"] = "none",
        username: str | None = None,
        password: SecretStr | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self._host = host
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._timeout_s = timeout_s
        self._client: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        client = aiosmtplib.SMTP(
            hostname=self._host,
            port=self._port,
            timeout=self._timeout_s,
            use_tls=self._security == "tls",
            start_tls=self._security == "starttls",
        )
        await client.connect()
        if self._username:
            password = self._password.get_secret_value() if self._password else ""
            await client.login(self._username, password)
        self._client = client
        return client

    async def send(self, message: Message) -> None:
        """Hand ``message`` to the server; raises ``DeliveryError`` saying whether to retry."""
        try:
            client = await self._connected()
            await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [r.code for r in error.recipients]
            await self.close()
            raise DeliveryError(
                DeliveryFailure.INVALID_RECIPIENT,
                f"recipient refused ({', '.join(map(str, codes))})",
                permanent=all(code >= 500 for code in codes),
            ) from error
        except aiosmtplib.SMTPTimeoutError as error:
            await self.close()
            raise DeliveryError(
                DeliveryFailure.TIMEOUT, f"SMTP timeout after {self._timeout_s:g} s"
            ) from error
        except aiosmtplib.SMTPResponseException as error:
            await self.close()
            permanent = 500 <= error.code < 600 and error.code != 552  # 552: mailbox full, may clear
            raise DeliveryError(
                DeliveryFailure.REJECTED if permanent else DeliveryFailure.OTHER,
                f"SMTP {error.code}",
                permanent=permanent,
            ) from error
        except (aiosmtplib.SMTPException, OSError) as error:
            await self.close()
            raise DeliveryError(DeliveryFailure.CONNECTION_ERROR, type(error).__name__) from error

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
