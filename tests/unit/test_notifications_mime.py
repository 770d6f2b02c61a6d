"""The composed email (compat32 classes, for speed) says what the rendered templates say: the same
headers and decoded parts as ``EmailMessage`` would carry, readable transfer encodings, and the
``EmailMessage`` route where only it will do (addresses that need SMTPUTF8)."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtplib.email import flatten_message

from lastline_notifications.mail import Renderer, compose
from tests.unit.test_notifications_templates import NAMES, view

SENDER = "Lastline <noreply@lastline.test>"


@pytest.mark.parametrize("language", ["eng", "spa"])
@pytest.mark.parametrize("name", NAMES)
def test_message_carries_the_rendered_parts_and_headers(name: str, language: str) -> None:
    rendered = Renderer().render(name, language, view(language))
    message = compose(
        rendered, sender=SENDER, to_name="Dana Pérez, Jr.", to_address="d@x.org", message_id="n-1"
    )
    flat = flatten_message(message)  # as aiosmtplib puts it on the wire
    parsed = message_from_bytes(flat, policy=policy.default)
    assert parsed["From"] == SENDER
    assert parsed["To"] == '"Dana Pérez, Jr." <d@x.org>'
    assert parsed["Subject"] == rendered.subject
    assert parsed["Message-ID"] == "<n-1@lastline.invalid>"
    assert parsed["X-Lastline-Notification"] == "n-1"
    assert parsed["Content-Language"] == {"eng": "en", "spa": "es"}[rendered.language]
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content() == rendered.text
    assert html.get_content() == rendered.html
    for part in (text, html):
        assert part["Content-Transfer-Encoding"] in ("7bit", "8bit", "quoted-printable")
        assert part["MIME-Version"] is None
    assert max(len(line) for line in flat.splitlines()) <= 998  # RFC 5322


def test_address_needing_smtputf8_takes_the_email_message_route() -> None:
    rendered = Renderer().render("match_made", "eng", view("eng"))
    message = compose(rendered, sender=SENDER, to_name=None, to_address="zoë@例え.jp", message_id="n-2")
    assert isinstance(message, EmailMessage)
    assert b"To: zo\xc3\xab@" in flatten_message(message, utf8=True)  # as UTF-8, for SMTPUTF8
    named = compose(rendered, sender=SENDER, to_name="Zoë Núñez", to_address="zoë@例え.jp", message_id="n-4")
    assert "Zoë Núñez <zoë@例え.jp>".encode() in flatten_message(named, utf8=True)


def test_a_line_break_in_a_header_is_refused() -> None:
    rendered = Renderer().render("match_made", "eng", view("eng"))
    with pytest.raises(ValueError, match="line breaks"):
        compose(rendered, sender=SENDER, to_name="Dana\nBcc: x@y.z", to_address="d@x.org", message_id="n-3")
