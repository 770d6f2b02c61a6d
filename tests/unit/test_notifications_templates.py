"""Every email template renders in text and HTML, in English and (where translated) Spanish."""

from __future__ import annotations

import uuid
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from lastline_notifications.labels import label, language_name, template_language
from lastline_notifications.mail import TEMPLATES, Renderer, compose
from lastline_notifications.messages import case_view
from lastline_notifications.projections import CaseSummary, Referral

CASE = CaseSummary(
    uuid.uuid4(),
    "open",
    "STWRTGA",
    "LUM",
    "asylum",
    ("mam", "spa"),
    date(2026, 3, 16),
    (Referral("p1", "c1"),),
)
NAMES = sorted(p.stem for p in (TEMPLATES / "eng").glob("*.jinja"))


def view(language: str) -> dict[str, object]:
    return {
        "recipient": {"name": "Dana <Whitfield>"},
        "case": case_view(CASE, language),
        "case_id": str(CASE.case_id),
        "role": label("attorney", language),
        "reason": label("filled", language),
        "reasons": [label("language_shared", language)],
        "missing": ["attorney"],
        "causes": ["no language match"],
        "mentor_needed": True,
        "expires_at": "2026-03-04 15:30 UTC",
        "accept_url": "http://m.test/v1/proposals/t/accept",
        "decline_url": "http://m.test/v1/proposals/t/decline",
        "packet_url": "http://i.test/v1/case-packets/t",
        "other": {"name": "Luis Ortega", "email": "l.ortega@example.org"},
        "days": 7,
        "days_to_hearing": 3,
        "next_hearing_date": "2026-03-16",
        "proposals_open": 0,
        "proposals_declined": 2,
        "proposals_expired": 1,
    }


@pytest.mark.parametrize("language", ["eng", "spa"])
@pytest.mark.parametrize("name", NAMES)
def test_template_renders_text_and_escaped_html(name: str, language: str) -> None:
    rendered = Renderer().render(name, language, view(language))
    assert rendered.subject
    assert "\n" not in rendered.subject
    assert "{{" not in rendered.text
    assert "{%" not in rendered.html
    if name != "escalation_oncall":
        assert "Dana <Whitfield>" in rendered.text  # text is not escaped...
        assert "Dana &lt;Whitfield&gt;" in rendered.html  # ...HTML is
    expected = language if (Path(TEMPLATES) / language / f"{name}.jinja").exists() else "eng"
    assert rendered.language == expected


def test_spanish_where_translated_english_otherwise() -> None:
    assert {p.stem for p in (TEMPLATES / "spa").glob("*.jinja")} == set(NAMES) - {"escalation_oncall"}
    assert template_language("spa") == "spa"
    assert template_language("mam") == "eng"
    assert Renderer().render("escalation_oncall", "spa", view("spa")).language == "eng"
    assert language_name("mam", "spa") == "Mam"
    assert language_name("spa", "spa") == "Español"
    assert label("role_fits", "spa") == "usted asume este rol"
    assert label("some_new_code", "spa") == "some new code"


def test_composed_message_has_both_parts_and_a_stable_message_id() -> None:
    rendered = Renderer().render("match_proposed", "spa", view("spa"))
    message = compose(
        rendered, sender="L <n@l.test>", to_name="Dana Whitfield", to_address="d@x.org", message_id="abc"
    )
    parsed = message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == "<abc@lastline.invalid>"
    assert parsed["Content-Language"] == "es"
    assert parsed["Subject"] == "Un caso para usted: asilo en Stewart Detention Center"
    assert parsed.get_body(("plain",)) is not None
    assert parsed.get_body(("html",)) is not None
