"""Realistic partner traffic for intake: seeded, deterministic, each submission with its expected outcome.

:func:`simulate` returns the Kafka records partners publish on their ``partner.<id>.submissions`` topics,
in publishing order, each with what intake must make of it: accepted with the canonical event it causes,
or rejected with reason codes its rejection must carry. Tests count the expected events and rejections
from these; the benchmark and the demo replay them. The same arguments give the same bytes.

The valid traffic is scripts, one per partner record, interleaved at random with each script's own order
kept (one key, one partition, so Kafka keeps it too): a registration, updates, sometimes a withdrawal or
a closure. Some updates come before their registration (intake holds them); some clients are referred by
two partners (one A-number, written two ways) and some volunteers registered by two (one email in two
letter cases): each is one record in the network, and the second registration is a merge.

Outcomes are exact when intake applies the records in list order. Kafka keeps order within a key only,
so it may swap which of a shared pair is the registration and which the merge; the counts per event type
stay the same. Every update changes something (a fresh hearing date, a new capacity), so none is a no-op
in any order; shared records are never closed or withdrawn, so no update meets a closed record by chance.

Client names, A-numbers and dates of birth are synthetic; facility and court codes are the reference
data's real ones, chosen near each partner.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from lastline_shared import reference
from lastline_shared.contracts.base import Submission
from lastline_shared.contracts.enums import CaseOutcome
from lastline_shared.contracts.envelope import Envelope, KafkaRecord, decode, encode
from lastline_shared.contracts.profiles import BarAdmissions
from lastline_shared.contracts.submissions import (
    CaseClosedSubmission,
    CaseOpenedSubmission,
    CaseUpdatedSubmission,
    Client,
    ClientContact,
    DocumentRef,
    ReferralContact,
    VolunteerRegisteredSubmission,
    VolunteerUpdatedSubmission,
    VolunteerWithdrawnSubmission,
)

Status = Literal["accepted", "rejected"]
Stage = Literal["decode", "rules", "state"]
"""Where a rejection comes from: the envelope or schema, intake's rules, or the record's state."""

INJECTIONS = (
    "Robert'); DROP TABLE volunteers;--",
    "<script>alert('xss')</script>",
    "' OR '1'='1' --",
    '"; DELETE FROM cases WHERE ""="',
    "<img src=x onerror=alert(document.cookie)>",
    "{{7*7}} ${7*7} #{7*7}",
    "1; EXEC xp_cmdshell('dir')",
)
"""Hostile text that is valid input: intake must accept it and keep it as text."""
_INJECTIONS_JSON = tuple(json.dumps(text, ensure_ascii=False)[1:-1].encode() for text in INJECTIONS)


@dataclass(frozen=True, slots=True)
class Expected:
    status: Status
    event_type: str | None = None
    """The canonical event the submission causes (on ``volunteers`` or ``cases``)."""
    codes: frozenset[str] = frozenset()
    """Rejected: reason codes that must be among the rejection's reasons."""
    stage: Stage | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One record a partner publishes, and what intake must make of it."""

    partner_id: str
    kind: str
    """The submission type (``case-opened``) or ``malformed:<what>``."""
    record: KafkaRecord
    expected: Expected
    event_id: str | None
    """The ``ce_id`` as intake reads it; None when missing or unreadable (then not deduplicated)."""
    submission: Submission | None = None
    """The submission behind the record where it has a valid schema (for the HTTP API)."""
    tags: frozenset[str] = frozenset()
    """``held`` (sent before its registration), ``shared`` (a record two partners send),
    ``injection`` (hostile but valid text)."""
    client_pii: tuple[str, ...] = ()
    """The family name (first), full name, other names, A-number digits and date of birth of the
    client the record is about."""


@dataclass(frozen=True)
class Traffic:
    partner_ids: tuple[str, ...]
    items: tuple[Item, ...]
    volunteers: int
    """Distinct volunteers (by email) the accepted submissions make."""
    cases: int
    """Distinct cases (by client) the accepted submissions make."""

    def records(self) -> list[KafkaRecord]:
        return [item.record for item in self.items]

    def expected_events(self) -> Counter[str]:
        """Canonical event type -> how many intake publishes."""
        return Counter(i.expected.event_type for i in self.items if i.expected.event_type is not None)

    def accepted(self) -> list[Item]:
        return [item for item in self.items if item.expected.status == "accepted"]

    def rejected(self) -> list[Item]:
        return [item for item in self.items if item.expected.status == "rejected"]

    def client_pii(self) -> frozenset[str]:
        """Every client PII string in the traffic: none may leave intake unencrypted."""
        return frozenset(text for item in self.items for text in item.client_pii)

    def pii_in(self, text: str) -> set[str]:
        """The client PII strings of this traffic that occur in ``text`` (a log, records of a topic).

        Fast on megabytes: A-numbers and dates are found by pattern and looked up; names by their
        family name (every full name and alias contains it), also as JSON escapes it.
        """
        pii = self.client_pii()
        found = {day for day in _DAY.findall(text) if day in pii}
        for run in _DIGITS.findall(text):
            found.update(run[i : i + 9] for i in range(len(run) - 8) if run[i : i + 9] in pii)
        families = {item.client_pii[0] for item in self.items if item.client_pii}
        for family in families | {_ascii(f) for f in families}:
            if family in text or json.dumps(family)[1:-1] in text:
                found.add(family)
        return found

    def redeliverable(self) -> list[Item]:
        """Items with a readable ``ce_id``: a second copy of one must have no effect."""
        return [item for item in self.items if item.event_id is not None]


def simulate(
    partner_ids: Sequence[str],
    *,
    total: int,
    today: date,
    malformed_ratio: float = 0.1,
    seed: int = 0,
) -> Traffic:
    """``total`` submissions spread over ``partner_ids``, ``malformed_ratio`` of them to be rejected.

    ``today`` is intake's today (in the network's time zone): hearings are weeks after it, detention
    and birth dates before it.
    """
    if not partner_ids:
        raise ValueError("at least one partner")
    if not 0 <= malformed_ratio <= 1:
        raise ValueError("malformed_ratio is a share between 0 and 1")
    generator = _Generator(tuple(partner_ids), today, random.Random(seed))  # noqa: S311 (not secrets)
    return generator.run(total, round(total * malformed_ratio))


# -- synthetic data ----------------------------------------------------------------------------------

_REGIONS = (
    ("GA", "FL", "AL", "SC", "NC", "TN"),
    ("TX", "NM"),
    ("LA", "MS"),
    ("CA", "AZ", "NV"),
    ("NY", "NJ", "PA", "MA"),
)
_FEDERAL = {
    "GA": ("gand", "gamd", "gasd", "ca11"),
    "FL": ("flsd", "flmd", "flnd", "ca11"),
    "TX": ("txsd", "txwd", "txnd", "txed", "ca5"),
    "NM": ("nmd", "ca10"),
    "LA": ("lawd", "lamd", "laed", "ca5"),
    "MS": ("mssd", "msnd", "ca5"),
    "CA": ("cacd", "casd", "cand", "caed", "ca9"),
    "AZ": ("azd", "ca9"),
    "NV": ("nvd", "ca9"),
    "NY": ("nysd", "nyed", "nywd", "ca2"),
    "NJ": ("njd", "ca3"),
    "PA": ("paed", "pamd", "ca3"),
    "MA": ("mad", "ca1"),
}
_AREA_CODES = {
    "GA": ("404", "478", "912", "229"), "FL": ("305", "904", "813"), "TX": ("713", "956", "915", "210"),
    "NM": ("505", "575"), "LA": ("504", "337", "318"), "MS": ("601", "228"), "CA": ("619", "213", "760"),
    "AZ": ("602", "520"), "NV": ("702", "775"), "NY": ("212", "718", "585"), "NJ": ("201", "973"),
    "PA": ("215", "717"), "MA": ("617", "508"),
}  # fmt: skip

# Clients' languages by nationality, as partners send them (ISO 639-1 where it exists), preferred first.
_NATIONALITIES: dict[str, tuple[float, tuple[tuple[tuple[str, ...], float], ...]]] = {
    "GT": (18, ((("es",), 35), (("mam", "es"), 28), (("quc", "es"), 22), (("kjb", "es"), 10), (("mam",), 5))),
    "HN": (16, ((("es",), 95), (("cab", "es"), 5))),
    "MX": (14, ((("es",), 90), (("nhe", "es"), 5), (("mix", "es"), 5))),
    "SV": (8, ((("es",), 1),)),
    "VE": (8, ((("es",), 1),)),
    "HT": (6, ((("ht",), 70), (("ht", "fr"), 30))),
    "CU": (5, ((("es",), 1),)),
    "CO": (5, ((("es",), 1),)),
    "EC": (5, ((("es",), 85), (("qu", "es"), 15))),
    "NI": (3, ((("es",), 1),)),
    "BR": (3, ((("pt",), 1),)),
    "IN": (3, ((("pa", "hi"), 60), (("hi",), 25), (("gu", "hi"), 15))),
    "CN": (2, ((("zh",), 80), (("yue", "zh"), 20))),
    "RU": (1, ((("ru",), 1),)),
    "MR": (1, ((("ar", "fr"), 50), (("ff", "ar"), 30), (("wo", "fr"), 20))),
    "AF": (1, ((("ps", "fa"), 50), (("fa",), 50))),
    "CM": (1, ((("fr", "en"), 60), (("en",), 40))),
}
# Clients' family names are long and distinctive, and volunteers' names never overlap them: a client
# name found anywhere outside intake is a leak, never a namesake.
_LATIN_NAMES = (
    (
        "Marvin", "Santos", "Juana", "Elmer", "Rigoberto", "Florinda", "Yesenia", "Wilmer", "Dilcia",
        "Nehemías", "Kenia", "Osmín", "Glenda", "Brayan", "Maritza", "Edwin", "Ingrid", "Jefferson",
        "Xiomara", "Yoselin", "Darwin", "Lesbia", "Olvin", "Reina", "Fredy", "Sulma", "Eleazar",
    ),
    (
        "Pérez Tzoc", "Ixcoy Tambriz", "Chávez Mendoza", "Xicará Coyoy", "López Bámaca", "Tzul Batz",
        "Cux Ajanel", "Hernández Ramos", "Mejía Cruz", "Bautista Gómez", "Orellana Funes", "Zelaya Paz",
        "Castro Funes", "Villatoro Lemus", "Aguilar Nolasco", "Matute Rivera", "Sandoval Ortiz",
        "Alvarado Cáceres", "Reyes Barahona", "Quiñónez Arita", "Maldonado Yax", "Tomás Sicajau",
    ),
)  # fmt: skip
_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "HT": (
        ("Wilner", "Mirlande", "Fritznel", "Dieula", "Jean-Robert", "Nadège", "Wisly", "Rosemène"),
        ("Pierre-Louis", "Jean-Baptiste", "Saint-Fleur", "Exantus", "Désir Joseph", "Louissaint"),
    ),
    "BR": (("Thiago", "Luana", "Wesley", "Jussara"), ("Silva Souza", "Oliveira Lima", "Pereira Nunes")),
    "IN": (("Gurpreet", "Harjit", "Manpreet", "Priyanka"), ("Sandhu Singh", "Dhillon", "Gill Kaur")),
    "CN": (("Xiaoling", "Jianhua", "Meiling", "Zhiwei"), ("Zheng Wenhao", "Huang Lixin", "Lin Yuqing")),
    "RU": (("Dmitri", "Anzor", "Oksana", "Ruslan"), ("Sokolovsky", "Kadyrova", "Ivanenko")),
    "MR": (("Mohamed", "Aminetou", "Cheikh", "Mariem"), ("Ould Ahmedou", "Mint Sidiya", "Ould Bilal")),
    "AF": (("Ahmad", "Zarghuna", "Farid", "Mursal"), ("Rahimzai", "Noorzai", "Hakimyar")),
    "CM": (("Emmanuel", "Blessing", "Clarisse", "Fonyuy"), ("Nkwenti Fru", "Tabi Egbe", "Fomumbod")),
}  # fmt: skip
_VOLUNTEER_NAMES = (
    (
        "Dana", "Margaret", "Luis", "Priya", "Samuel", "Grace", "Tomás", "Rebecca", "Kwame", "Hannah",
        "Daniel", "Claire", "Mateo", "Nadia", "Owen", "Lucía", "Benjamin", "Aisha", "Ethan", "Sofía",
        "Rachel", "Jonah", "Camila", "Noah", "Esther", "Isaac", "Marisol", "Julian", "Tova", "Andre",
    ),
    (
        "Whitfield", "Chen", "Ortega", "Raman", "Okafor", "Goldberg", "Delgado", "Nguyen", "Morales",
        "Fitzgerald", "Haddad", "Kowalski", "Rosen", "Abernathy", "Ibarra", "Lindqvist", "Mensah", "Park",
        "Serrano", "Thompson", "Vasquez", "Winters", "Yamada", "Zimmerman", "Brennan", "Castellanos",
    ),
)  # fmt: skip
_DOMAINS = ("example.org", "example.com", "example.net", "lawclinic.example.org", "firm.example.com")

_ROLES: tuple[tuple[tuple[str, ...], float], ...] = (
    (("attorney",), 40),
    (("attorney", "mentor"), 5),
    (("accredited_representative",), 5),
    (("law_student",), 10),
    (("paralegal",), 5),
    (("interpreter",), 22),
    (("medical_evaluator",), 4),
    (("psych_evaluator",), 5),
    (("country_conditions_expert",), 4),
)
_EXPERIENCE = (("novice", 35), ("intermediate", 30), ("experienced", 20), ("expert", 15))
# A second working language besides English, by how often the network needs it.
_LANGUAGES = (
    ("es", 50), ("mam", 6), ("quc", 5), ("kjb", 2), ("ht", 8), ("pt", 6), ("fr", 6), ("ar", 5),
    ("ru", 4), ("zh", 3), ("pa", 2), ("hi", 2), ("fa", 1),
)  # fmt: skip
_PRACTICE = (
    "asylum", "withholding_cat", "removal_defense", "bond", "cancellation_of_removal", "credible_fear",
    "parole", "federal_habeas", "sijs", "u_visa", "motion_to_reopen", "bia_appeal", "crimmigration",
)  # fmt: skip
_CASE_TYPES = (
    ("asylum", 34), ("removal_defense", 16), ("bond", 14), ("withholding_cat", 8), ("credible_fear", 6),
    ("reasonable_fear", 3), ("cancellation_of_removal", 5), ("parole", 4), ("federal_habeas", 3),
    ("sijs", 2), ("u_visa", 2), ("motion_to_reopen", 2), ("bia_appeal", 1),
)  # fmt: skip
_FLAGS = (
    ("criminal_history", 0.15), ("prior_removal_order", 0.10), ("reinstatement", 0.04),
    ("in_absentia_order", 0.04), ("expedited_removal", 0.06), ("mental_competency", 0.03),
    ("serious_medical_condition", 0.04),
)  # fmt: skip
_HEARING_KINDS = (("master_calendar", 55), ("individual_merits", 25), ("bond", 15), ("other", 5))
_OUTCOMES = (
    ("relief_granted", 20), ("bond_granted", 20), ("paroled", 8), ("released", 8), ("removed", 15),
    ("relief_denied", 10), ("transferred_out", 7), ("represented_elsewhere", 7), ("terminated", 5),
)  # fmt: skip
_WITHDRAWALS = (("no_capacity", 45), ("left_network", 30), ("unresponsive", 15), ("other", 10))
_DOCUMENTS = ("Notice to Appear", "I-589 draft", "Credible fear worksheet", "Medical records", "Form I-213")
_NOTES = (
    "Client reached by legal call only; the facility limits calls to 15 minutes.",
    "Prefers a woman attorney. Declaration to be prepared before the merits hearing.",
    "Family in the US can gather support letters; a sponsor is available for bond.",
    "Speaks limited Spanish: an interpreter is needed for every meeting.",
    "Transferred twice in the last month; confirm the location before visiting.",
)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGITS = re.compile(r"\d{9,}")


def _pick(rng: random.Random, choices: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([c for c, _ in choices], [w for _, w in choices])[0]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _headers(record: KafkaRecord, **changes: bytes | None) -> KafkaRecord:
    """The record with headers replaced, or removed where ``None`` (``content_type``: content-type)."""
    wanted = {name.replace("content_type", "content-type"): value for name, value in changes.items()}
    headers = []
    for name, raw in record.headers:
        if name not in wanted:
            headers.append((name, raw))
        elif (value := wanted[name]) is not None:
            headers.append((name, value))
    return replace(record, headers=tuple(headers))


def _client_pii(client: Client) -> tuple[str, ...]:
    texts = [client.family_name, f"{client.given_name} {client.family_name}", *client.other_names]
    if client.a_number is not None:
        texts.append(client.a_number.removeprefix("A"))  # the contract keeps the 9 digits only
    if client.date_of_birth is not None:
        texts.append(client.date_of_birth.isoformat())
    return tuple(texts)


# -- planning ----------------------------------------------------------------------------------------

Role = Literal["register", "update", "withdraw", "close", "bad"]


@dataclass(slots=True)
class _Planned:
    item: Item
    role: Role
    group: tuple[str, str]
    """The network record it is about: (``volunteer``, email) or (``case``, A-number or partner/id)."""
    at: float


@dataclass(slots=True)
class _Volunteer:
    partner_id: str
    external_id: str
    fields: dict[str, Any]
    caps: set[int] = field(default_factory=set)
    """Capacities sent so far: each submission sends a new one, so each changes the profile."""


@dataclass(slots=True)
class _Case:
    partner_id: str
    external_id: str
    client: Client
    fields: dict[str, Any]
    extra: dict[str, Any]
    """Notes, referral contact, documents: encrypted with the client's details."""
    hearings: set[date] = field(default_factory=set)
    """Hearing dates sent so far: each submission sends a new one, so each changes the facts."""


class _Generator:
    def __init__(self, partners: tuple[str, ...], today: date, rng: random.Random) -> None:
        self.partners = partners
        self.today = today
        self.rng = rng
        self.epoch = datetime.combine(today, time(11, 0), UTC)
        self.serial: Counter[str] = Counter()
        self.a_numbers: set[str] = set()
        self.emails: set[str] = set()
        self.region = {p: _REGIONS[i % len(_REGIONS)] for i, p in enumerate(partners)}
        every = reference.all_facilities()
        self.facilities = {
            p: [f for f in every if f.state in self.region[p]] or list(every) for p in partners
        }
        courts = reference.all_courts()
        nearest = {f.code: min(courts, key=lambda c: reference.distance_km(f, c)).code for f in every}
        self.court_of = {f.code: f.court or nearest[f.code] for f in every}
        # A partner's few intake staff sign its referrals.
        self.staff = {p: [self._staff(p, n) for n in range(1, 4)] for p in partners}

    def run(self, total: int, bad: int) -> Traffic:
        planned: list[_Planned] = []
        valid_left = total - bad
        for _ in range(bad):
            steps = self._bad(room=valid_left)  # one bad item, sometimes after valid ones it needs
            planned += steps
            valid_left -= len(steps) - 1
        while valid_left > 0:
            scripts = self._scripts() if valid_left >= 12 else [self._single_registration()]
            for steps in scripts:
                planned += steps
                valid_left -= len(steps)
        planned.sort(key=lambda p: p.at)
        return self._expect(planned)

    def _expect(self, planned: list[_Planned]) -> Traffic:
        """The outcome of each valid item, applying them in order as intake does."""
        created: set[tuple[str, str]] = set()
        items: list[Item] = []
        for p in planned:
            item, kind = p.item, p.group[0]
            if p.role == "register":
                event = f"{kind}-updated" if p.group in created else item.kind  # a merge, or a new record
                created.add(p.group)
                item = replace(item, expected=Expected("accepted", event))
            elif p.role != "bad":
                events = {
                    "update": f"{kind}-updated",
                    "withdraw": "volunteer-withdrawn",
                    "close": "case-closed",
                }
                item = replace(item, expected=Expected("accepted", events[p.role]))
            items.append(item)
        volunteers = sum(1 for kind, _ in created if kind == "volunteer")
        return Traffic(self.partners, tuple(items), volunteers=volunteers, cases=len(created) - volunteers)

    # -- encoding ----------------------------------------------------------------------------------

    def _item(
        self,
        submission: Submission,
        partner_id: str,
        at: float,
        *,
        tags: Iterable[str] = (),
        client_pii: tuple[str, ...] = (),
    ) -> Item:
        rng = self.rng
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        traceparent = f"00-{rng.getrandbits(128) | 1:032x}-{rng.getrandbits(64) | 1:016x}-01"
        record = encode(
            submission,
            source=f"/partners/{partner_id}",
            event_id=event_id,
            time=self.epoch + timedelta(hours=8 * at),
            traceparent=traceparent,
        )
        hostile = any(text in record.value for text in _INJECTIONS_JSON)
        return Item(
            partner_id,
            submission.event_type,
            record,
            Expected("accepted"),
            str(event_id),
            submission,
            frozenset(tags) | ({"injection"} if hostile else set()),
            client_pii,
        )

    def _external_id(self, partner_id: str, kind: str) -> str:
        self.serial[f"{partner_id}/{kind}"] += 1
        n = self.serial[f"{partner_id}/{kind}"]
        style = self.partners.index(partner_id) % 3
        if style == 0:
            return f"{partner_id}-{kind}-{n:05d}"
        if style == 1:
            return f"{kind.upper()}-{self.today.year}-{n:05d}"
        return f"{kind[0]}:{self.today.year}:{n}"

    # -- valid scripts -------------------------------------------------------------------------------

    def _scripts(self) -> list[list[_Planned]]:
        shared = len(self.partners) > 1 and self.rng.random() < 0.07
        if self.rng.random() < 0.38:
            return self._volunteer_scripts(shared=shared)
        return self._case_scripts(shared=shared)

    def _single_registration(self) -> list[_Planned]:
        volunteer = self._new_volunteer(self.rng.choice(self.partners))
        at = self.rng.random()
        item = self._item(self._volunteer_submission(volunteer, "register"), volunteer.partner_id, at)
        return [_Planned(item, "register", ("volunteer", volunteer.fields["email"].lower()), at)]

    def _roles(self, *, held: bool, last: Role | None) -> list[Role]:
        updates = _pick(self.rng, ((0, 35), (1, 30), (2, 20), (3, 15)))
        roles: list[Role] = ["update"] if held else []
        roles.append("register")
        roles += ["update"] * updates
        return [*roles, last] if last is not None else roles

    def _times(self, count: int) -> list[float]:
        at = self.rng.random()
        out = []
        for _ in range(count):
            out.append(at)
            at += self.rng.uniform(0.0005, 0.03)
        return out

    def _volunteer_scripts(self, *, shared: bool) -> list[list[_Planned]]:
        rng = self.rng
        first = self._new_volunteer(rng.choice(self.partners))
        owners = [first]
        if shared:
            other = self._new_volunteer(rng.choice([p for p in self.partners if p != first.partner_id]))
            local, _, domain = first.fields["email"].partition("@")
            other.fields = {**first.fields, "email": f"{local.title()}@{domain}"}  # the same mailbox
            other.caps = first.caps  # one volunteer: every capacity sent distinct
            owners.append(other)
        group = ("volunteer", first.fields["email"].lower())
        scripts = []
        for owner in owners:
            held = not shared and rng.random() < 0.1
            last: Role | None = "withdraw" if not shared and rng.random() < 0.1 else None
            roles = self._roles(held=held, last=last)
            steps = []
            for i, (role, at) in enumerate(zip(roles, self._times(len(roles)), strict=True)):
                tags = {"shared"} if shared else {"held"} if held and i == 0 else set()
                submission = self._volunteer_submission(owner, role)
                steps.append(
                    _Planned(self._item(submission, owner.partner_id, at, tags=tags), role, group, at)
                )
            scripts.append(steps)
        return scripts

    def _case_scripts(self, *, shared: bool) -> list[list[_Planned]]:
        rng = self.rng
        first = self._new_case(rng.choice(self.partners), a_number_known=shared or rng.random() < 0.92)
        owners = [first]
        if shared:
            other = self._new_case(rng.choice([p for p in self.partners if p != first.partner_id]))
            a_number = first.client.a_number or ""
            # The other partner writes the A-number its own way (set after validation, as above).
            written = a_number.removeprefix("A") if a_number.startswith("A") else f"A{a_number}"
            other.client = first.client.model_copy(update={"a_number": written})
            other.fields = {**first.fields}
            other.hearings = first.hearings  # one case: every hearing date sent distinct
            owners.append(other)
        scripts = []
        for owner in owners:
            held = not shared and rng.random() < 0.1
            last: Role | None = "close" if not shared and rng.random() < 0.15 else None
            roles = self._roles(held=held, last=last)
            group = ("case", _case_group(first))
            steps = []
            for i, (role, at) in enumerate(zip(roles, self._times(len(roles)), strict=True)):
                tags = {"shared"} if shared else {"held"} if held and i == 0 else set()
                submission = self._case_submission(owner, role)
                item = self._item(
                    submission, owner.partner_id, at, tags=tags, client_pii=_client_pii(owner.client)
                )
                steps.append(_Planned(item, role, group, at))
            scripts.append(steps)
        return scripts

    # -- volunteers ----------------------------------------------------------------------------------

    def _new_volunteer(self, partner_id: str) -> _Volunteer:
        rng = self.rng
        given, family = rng.choice(_VOLUNTEER_NAMES[0]), rng.choice(_VOLUNTEER_NAMES[1])
        name = rng.choice(INJECTIONS) if rng.random() < 0.01 else f"{given} {family}"
        email = self._email(given, family)
        roles: tuple[str, ...] = _pick(rng, _ROLES)
        lawyer = roles[0] in ("attorney", "accredited_representative")
        home = rng.choice([s for s in self.region[partner_id] if s in _FEDERAL] or ["GA"])
        languages = ["en"]
        if roles[0] == "interpreter":
            languages += rng.sample(["es", *(c for c, _ in _LANGUAGES[1:])], k=1)
            if rng.random() < 0.3:
                languages += [c for c in [_pick(rng, _LANGUAGES)] if c not in languages]
        elif rng.random() < 0.45:
            languages.append("es")
        elif rng.random() < 0.1:
            languages.append(_pick(rng, _LANGUAGES[1:]))
        experience = _pick(rng, _EXPERIENCE)
        if "mentor" in roles:
            experience = rng.choice(("experienced", "expert"))
        elif roles[0] == "law_student":
            experience = "novice"
        fields: dict[str, Any] = {
            "name": name,
            "email": email,
            "phone": self._phone(home) if rng.random() < 0.7 else None,
            "roles": roles,
            "languages": tuple(languages),
            "experience_level": experience,
            "max_active_cases": 1,
            "facilities_reachable": tuple(
                f.code for f in rng.sample(self.facilities[partner_id], k=min(rng.randint(0, 3), 3))
            ),
            "remote": rng.random() < (0.85 if roles[0] == "interpreter" else 0.5),
        }
        if lawyer or roles[0] == "law_student":
            fields["practice_areas"] = tuple(rng.sample(_PRACTICE, k=rng.randint(1, 4)))
        if lawyer:
            fields["eoir_registered"] = rng.random() < 0.85
            fields["wants_mentor"] = experience == "novice" and rng.random() < 0.6
            fields["can_mentor"] = "mentor" in roles or (experience == "expert" and rng.random() < 0.4)
        if roles[0] == "attorney":
            courts = rng.sample(_FEDERAL[home], k=rng.randint(0, 2))
            fields["bar_admissions"] = BarAdmissions(states=(home,), federal_courts=tuple(courts))
        if roles[0] == "country_conditions_expert":
            fields["countries_of_expertise"] = tuple(rng.sample(sorted(_NATIONALITIES), k=rng.randint(1, 3)))
        return _Volunteer(partner_id, self._external_id(partner_id, "vol"), fields)

    def _email(self, given: str, family: str) -> str:
        base = f"{_ascii(given).lower()}.{_ascii(family).lower()}"
        email = f"{base}@{self.rng.choice(_DOMAINS)}"
        n = 1
        while email.lower() in self.emails:
            n += 1
            email = f"{base}{n}@{self.rng.choice(_DOMAINS)}"
        self.emails.add(email.lower())
        return email

    def _phone(self, state: str) -> str:
        area = self.rng.choice(_AREA_CODES.get(state, ("404",)))
        line = f"01{self.rng.randint(0, 99):02d}"  # 555-0100..0199: reserved for fiction, valid in form
        formats = (
            f"+1 {area} 555 {line}",
            f"({area}) 555-{line}",
            f"{area}.555.{line}",
            f"+1{area}555{line}",
        )
        return self.rng.choice(formats)

    def _capacity(self, volunteer: _Volunteer) -> int:
        roles = volunteer.fields["roles"]
        low, high = (2, 10) if roles[0] == "interpreter" else (1, 6)
        cap = self.rng.randint(low, high)
        while cap in volunteer.caps:
            cap = self.rng.randint(0, 100)
        volunteer.caps.add(cap)
        return cap

    def _volunteer_submission(self, volunteer: _Volunteer, role: Role) -> Submission:
        rng = self.rng
        if role == "withdraw":
            reason = _pick(rng, _WITHDRAWALS)
            return VolunteerWithdrawnSubmission(external_id=volunteer.external_id, reason=reason)
        # Every profile sent has a new capacity, so that it changes the volunteer whatever came before
        # (an update held before its registration is applied after it).
        volunteer.fields["max_active_cases"] = self._capacity(volunteer)
        if role == "update" and rng.random() < 0.2:
            volunteer.fields["remote"] = not volunteer.fields["remote"]
        model = VolunteerRegisteredSubmission if role == "register" else VolunteerUpdatedSubmission
        return model(external_id=volunteer.external_id, **volunteer.fields)

    # -- cases ---------------------------------------------------------------------------------------

    def _new_case(self, partner_id: str, *, a_number_known: bool = True) -> _Case:
        rng = self.rng
        nationality = _pick(rng, [(code, weight) for code, (weight, _) in _NATIONALITIES.items()])
        languages: tuple[str, ...] = _pick(rng, _NATIONALITIES[nationality][1])
        givens, families = _NAMES.get(nationality, _LATIN_NAMES)
        given, family = rng.choice(givens), rng.choice(families)
        case_type = _pick(rng, _CASE_TYPES)
        age_days = rng.randint(16 * 365, 20 * 365) if case_type == "sijs" else rng.randint(18 * 365, 62 * 365)
        client = Client(
            given_name=given,
            family_name=family,
            other_names=(_ascii(f"{given} {family}"),)
            if _ascii(family) != family and rng.random() < 0.4
            else (),
            a_number=self._a_number() if a_number_known else None,
            date_of_birth=self.today - timedelta(days=age_days),
            country_of_nationality=nationality,
            contact=ClientContact(phone=self._phone("GA")) if rng.random() < 0.2 else None,
        )
        if client.a_number is not None and rng.random() < 0.6:
            # Written as on the client's papers; set after validation, which keeps the digits only.
            client = client.model_copy(update={"a_number": f"A{client.a_number}"})
        facility = rng.choice(self.facilities[partner_id])
        flags = [flag for flag, p in _FLAGS if rng.random() < p]
        if case_type == "federal_habeas":
            flags.append("federal_habeas")
        needs = []
        if languages[0] not in ("es", "en"):
            needs.append("interpreter")
        if case_type in ("asylum", "withholding_cat") and rng.random() < 0.12:
            needs.append("psych_evaluator")
        if case_type in ("asylum", "withholding_cat") and rng.random() < 0.15:
            needs.append("country_conditions_expert")
        case = _Case(partner_id, self._external_id(partner_id, "case"), client, {}, {})
        case.fields = {
            "facility_code": facility.code,
            "court_code": self.court_of[facility.code],
            "case_type": case_type,
            "languages": languages,
            "next_hearing_date": None,  # set by each submission
            "next_hearing_kind": _pick(rng, _HEARING_KINDS),
            "detained_since": self.today - timedelta(days=rng.randint(3, 700))
            if rng.random() < 0.9
            else None,
            "complexity_flags": tuple(flags),
            "needs": tuple(needs),
            "country_conditions": (nationality,) if "country_conditions_expert" in needs else (),
        }
        case.extra = {
            "notes": rng.choice(INJECTIONS) if rng.random() < 0.01 else rng.choice(_NOTES),
            "referral_contact": rng.choice(self.staff[partner_id]),
            "documents": tuple(
                DocumentRef(title=title, received_on=self.today - timedelta(days=rng.randint(1, 90)))
                for title in rng.sample(_DOCUMENTS, k=rng.randint(0, 3))
            ),
        }
        return case

    def _a_number(self) -> str:
        while True:
            digits = f"2{self.rng.randint(0, 99_999_999):08d}"
            if digits not in self.a_numbers:
                self.a_numbers.add(digits)
                return digits

    def _staff(self, partner_id: str, n: int) -> ReferralContact:
        name = f"{self.rng.choice(_VOLUNTEER_NAMES[0])} {self.rng.choice(_VOLUNTEER_NAMES[1])}"
        return ReferralContact(name=name, email=f"intake{n}@{partner_id}.example.org")

    def _hearing(self, case: _Case) -> date:
        while (day := self.today + timedelta(days=self.rng.randint(14, 180))) in case.hearings:
            pass
        case.hearings.add(day)
        return day

    def _case_submission(self, case: _Case, role: Role) -> Submission:
        rng = self.rng
        if role == "close":
            outcome = _pick(rng, _OUTCOMES)
            closed_on = self.today - timedelta(days=rng.randint(1, 5))
            return CaseClosedSubmission(external_id=case.external_id, outcome=outcome, closed_on=closed_on)
        # Every state sent has a new hearing date, so that it changes the case whatever came before.
        case.fields["next_hearing_date"] = self._hearing(case)
        if role == "update":
            case.fields["next_hearing_kind"] = _pick(rng, _HEARING_KINDS)
            if rng.random() < 0.1:  # transferred
                facility = rng.choice(self.facilities[case.partner_id])
                case.fields |= {"facility_code": facility.code, "court_code": self.court_of[facility.code]}
            if rng.random() < 0.1 and "medical_evaluator" not in case.fields["needs"]:
                case.fields["needs"] = (*case.fields["needs"], "medical_evaluator")
        model = CaseOpenedSubmission if role == "register" else CaseUpdatedSubmission
        return model(external_id=case.external_id, client=case.client, **case.fields, **case.extra)

    # -- malformed -----------------------------------------------------------------------------------

    def _bad(self, *, room: int) -> list[_Planned]:
        """One malformed item; ``room``: how many valid items it may bring along (a closed case)."""
        kinds = [((k, s, t), w) for k, s, t, w in _BAD if room >= 2 or k != "update-after-close"]
        kind, stage, target = _pick(self.rng, kinds)
        partner_id = self.rng.choice(self.partners)
        at = self.rng.random()
        if kind == "update-after-close":
            return self._after_close(partner_id, at)
        if target == "case" or (target == "any" and self.rng.random() < 0.6):
            case = self._new_case(partner_id)
            submission = self._case_submission(case, "register")
            pii = _client_pii(case.client)
        else:
            submission = self._volunteer_submission(self._new_volunteer(partner_id), "register")
            pii = ()
        base = self._item(submission, partner_id, at, client_pii=pii)
        record, codes, valid = _BUILDERS[kind](self, base, submission)
        decoded = decode(record.topic, record.key, list(record.headers), record.value)
        event_id = decoded.id if isinstance(decoded, Envelope) else decoded.event_id
        item = replace(
            base,
            kind=f"malformed:{kind}",
            record=record,
            expected=Expected("rejected", codes=frozenset(codes), stage=stage),
            event_id=event_id,
            submission=valid,
        )
        return [_Planned(item, "bad", ("bad", kind), at)]

    def _after_close(self, partner_id: str, at: float) -> list[_Planned]:
        case = self._new_case(partner_id)
        group = ("case", _case_group(case))
        pii = _client_pii(case.client)
        steps = []
        roles: tuple[Role, ...] = ("register", "close", "update")
        for role, when in zip(roles, self._times(len(roles)), strict=True):
            item = self._item(self._case_submission(case, role), partner_id, when, client_pii=pii)
            steps.append(_Planned(item, role, group, when))
        late = steps[-1]
        expected = Expected("rejected", codes=frozenset({"case_closed"}), stage="state")
        late.item = replace(late.item, kind="malformed:update-after-close", expected=expected)
        late.role = "bad"
        return steps


def _case_group(case: _Case) -> str:
    a_number = case.client.a_number
    return a_number.removeprefix("A") if a_number else f"{case.partner_id}/{case.external_id}"


# -- the malformed corpus ------------------------------------------------------------------------------

Builder = Callable[[_Generator, Item, Submission], tuple[KafkaRecord, set[str], Submission | None]]


def _data(item: Item) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(item.record.value)
    return data


def _with(item: Item, data: dict[str, Any]) -> KafkaRecord:
    return replace(item.record, value=_dumps(data))


def _not_json(g: _Generator, item: Item, _: Submission) -> tuple[KafkaRecord, set[str], None]:
    value = item.record.value
    variants = (value[: len(value) // 2], b"", b"external_id=" + (item.record.key or b"") + b"&type=referral")
    return replace(item.record, value=g.rng.choice(variants)), {"invalid_json"}, None


def _latin1(g: _Generator, item: Item, submission: Submission) -> tuple[KafkaRecord, set[str], None]:
    data = _data(item)  # a feed exported as Latin-1: accents become bytes that are not UTF-8
    data["notes" if "client" in data else "name"] = "Atención: José Muñoz, señora Peña"
    value = json.dumps(data, ensure_ascii=False).encode("latin-1", errors="replace")
    return replace(item.record, value=value), {"invalid_encoding"}, None


def _nested(g: _Generator, item: Item, _: Submission) -> tuple[KafkaRecord, set[str], None]:
    data = _data(item)
    data["languages"] = "@@"
    depth = g.rng.randint(2_000, 20_000)
    value = _dumps(data).replace(b'"@@"', b"[" * depth + b"]" * depth)
    return replace(item.record, value=value), {"too_deeply_nested"}, None


def _oversized(g: _Generator, item: Item, _: Submission) -> tuple[KafkaRecord, set[str], None]:
    data = _data(item)
    if "client" in data and g.rng.random() < 0.5:
        data["notes"] = " ".join(_NOTES) * 40  # a pasted document, far beyond 4,000 characters
        return _with(item, data), {"string_too_long"}, None
    data["languages"] = [code for code, _ in _LANGUAGES] * 3
    return _with(item, data), {"too_long"}, None


def _header_case(name: str, value: Callable[[_Generator, Item], bytes | None], code: str) -> Builder:
    def build(g: _Generator, item: Item, _: Submission) -> tuple[KafkaRecord, set[str], None]:
        return _headers(item.record, **{name: value(g, item)}), {code}, None

    return build


def _other_source(g: _Generator, item: Item) -> bytes:
    others = [p for p in g.partners if p != item.partner_id] or ["someone-else"]
    return f"/partners/{g.rng.choice(others)}".encode()


def _key(g: _Generator, item: Item, _: Submission) -> tuple[KafkaRecord, set[str], None]:
    if g.rng.random() < 0.5:
        return replace(item.record, key=None), {"missing_key"}, None
    return replace(item.record, key=(item.record.key or b"") + b"-x"), {"key_mismatch"}, None


def _schema(mutate: Callable[[random.Random, dict[str, Any]], str]) -> Builder:
    """A JSON change the contract rejects; ``mutate`` returns the reason code it must cause."""

    def build(g: _Generator, item: Item, _: Submission) -> tuple[KafkaRecord, set[str], None]:
        data = _data(item)
        code = mutate(g.rng, data)
        return _with(item, data), {code}, None

    return build


def _bad_a_number(rng: random.Random, data: dict[str, Any]) -> str:
    data["client"]["a_number"] = rng.choice(
        ("A-201-234-567", "20123456", "A2012345678", "201 234 567", "N/A")
    )
    return "string_pattern_mismatch"


def _bad_language(rng: random.Random, data: dict[str, Any]) -> str:
    if rng.random() < 0.5:
        data["languages"] = [rng.choice(("xx", "zz", "qqq")), *data["languages"][1:]]
        return "language_code"
    data["languages"] = [rng.choice(("spanish", "Español", "es-MX")), *data["languages"][1:]]
    return "string_pattern_mismatch"


def _missing(rng: random.Random, data: dict[str, Any]) -> str:
    if "client" in data:
        field_ = rng.choice(("court_code", "languages", "case_type", "client.family_name"))
        owner = data["client"] if field_.startswith("client.") else data
        del owner[field_.removeprefix("client.")]
    else:
        del data[rng.choice(("email", "roles", "experience_level", "max_active_cases"))]
    return "missing"


def _bad_email(rng: random.Random, data: dict[str, Any]) -> str:
    if "client" in data:
        data["referral_contact"]["email"] = "intake desk"
    else:
        data["email"] = rng.choice(
            ("dana.whitfield(at)example.org", "dana.whitfield@", "dana whitfield@x.org")
        )
    return "email"


def _extra(rng: random.Random, data: dict[str, Any]) -> str:
    data[rng.choice(("priority", "ssn_last4", "internalNotes"))] = "high"
    return "extra_forbidden"


def _wrong_type(rng: random.Random, data: dict[str, Any]) -> str:
    if "client" in data:
        if rng.random() < 0.5:
            data["next_hearing_date"] = 1_767_225_600  # a Unix timestamp
            return "date_type"
        data["languages"] = data["languages"][0]
        return "tuple_type"
    data["max_active_cases"] = rng.choice(("three", "3"))
    return "int_type"


def _bad_enum(rng: random.Random, data: dict[str, Any]) -> str:
    if "client" in data:
        data["case_type"] = rng.choice(("deportation", "Asylum", "asylum case"))
    else:
        data["experience_level"] = rng.choice(("senior", "Expert", "5 years"))
    return "enum"


def _born_later(g: _Generator, item: Item, _: Submission) -> tuple[KafkaRecord, set[str], None]:
    data = _data(item)  # a century typo: 1991 written 2091 (in the future whatever the clock says)
    born = date.fromisoformat(data["client"]["date_of_birth"])
    data["client"]["date_of_birth"] = born.replace(year=born.year + 100).isoformat()
    return _with(item, data), {"date_in_future"}, None


def _rule(change: Callable[[_Generator, Submission], tuple[dict[str, Any], str]]) -> Builder:
    """A valid submission with a value intake's rules reject; ``change`` returns it and the code."""

    def build(g: _Generator, item: Item, submission: Submission) -> tuple[KafkaRecord, set[str], Submission]:
        update, code = change(g, submission)
        bad = submission.model_copy(update=update)
        return replace(item.record, value=bad.model_dump_json().encode()), {code}, bad

    return build


def _typo(g: _Generator, code: str, known: Callable[[str], object]) -> str:
    while True:
        i = g.rng.randrange(len(code))
        typo = code[:i] + g.rng.choice("ABCDEFGHKMNPRSTXZ0123456789") + code[i + 1 :]
        if known(typo) is None:
            return typo


def _unknown_facility(g: _Generator, submission: Submission) -> tuple[dict[str, Any], str]:
    if isinstance(submission, CaseOpenedSubmission):
        return {"facility_code": _typo(g, submission.facility_code, reference.facility)}, "unknown_facility"
    code = g.rng.choice([f.code for f in reference.all_facilities()])
    return {"facilities_reachable": (_typo(g, code, reference.facility),)}, "unknown_facility"


def _unknown_court(g: _Generator, submission: Submission) -> tuple[dict[str, Any], str]:
    assert isinstance(submission, CaseOpenedSubmission)
    return {"court_code": _typo(g, submission.court_code, reference.court)}, "unknown_court"


def _hearing_past(g: _Generator, _: Submission) -> tuple[dict[str, Any], str]:
    return {"next_hearing_date": g.today - timedelta(days=g.rng.randint(3, 90))}, "hearing_in_past"


def _detained_future(g: _Generator, _: Submission) -> tuple[dict[str, Any], str]:
    return {"detained_since": g.today + timedelta(days=g.rng.randint(3, 90))}, "detained_since_in_future"


def _placeholder(g: _Generator, submission: Submission) -> tuple[dict[str, Any], str]:
    assert isinstance(submission, CaseOpenedSubmission)
    client = submission.client.model_copy(update={"a_number": g.rng.choice(("000000000", "999999999"))})
    return {"client": client}, "placeholder_a_number"


def _bad_phone(g: _Generator, submission: Submission) -> tuple[dict[str, Any], str]:
    phone = g.rng.choice(("+1 000 000 0000", "+1 555 555 5555", "+1 (404) 555 01"))
    if isinstance(submission, CaseOpenedSubmission):
        return {
            "client": submission.client.model_copy(update={"contact": ClientContact(phone=phone)})
        }, "invalid_phone"
    return {"phone": phone}, "invalid_phone"


def _closed_future(
    g: _Generator, item: Item, submission: Submission
) -> tuple[KafkaRecord, set[str], Submission]:
    assert isinstance(submission, CaseOpenedSubmission)
    closed = CaseClosedSubmission(
        external_id=submission.external_id,
        outcome=CaseOutcome.BOND_GRANTED,
        closed_on=g.today + timedelta(days=g.rng.randint(2, 30)),
    )
    return g._item(closed, item.partner_id, 0).record, {"closed_on_in_future"}, closed


_BAD: tuple[tuple[str, Stage, str, float], ...] = (
    # (kind, stage, target: case | volunteer | any, weight)
    ("not-json", "decode", "any", 5),
    ("invalid-utf8", "decode", "any", 4),
    ("deeply-nested", "decode", "any", 2),
    ("oversized", "decode", "any", 4),
    ("unknown-type", "decode", "any", 4),
    ("missing-ce-id", "decode", "any", 3),
    ("missing-ce-type", "decode", "any", 3),
    ("wrong-specversion", "decode", "any", 3),
    ("bad-header-encoding", "decode", "any", 2),
    ("wrong-content-type", "decode", "any", 2),
    ("bad-ce-id", "decode", "any", 2),
    ("bad-ce-time", "decode", "any", 2),
    ("bad-key", "decode", "any", 2),
    ("other-partners-source", "decode", "any", 2),
    ("bad-a-number", "decode", "case", 5),
    ("bad-language", "decode", "any", 5),
    ("missing-field", "decode", "any", 5),
    ("bad-email", "decode", "any", 4),
    ("extra-field", "decode", "any", 3),
    ("wrong-type", "decode", "any", 4),
    ("bad-enum", "decode", "any", 3),
    ("birth-in-future", "decode", "case", 2),
    ("unknown-facility", "rules", "any", 7),
    ("unknown-court", "rules", "case", 4),
    ("hearing-in-past", "rules", "case", 6),
    ("detained-in-future", "rules", "case", 2),
    ("placeholder-a-number", "rules", "case", 3),
    ("invalid-phone", "rules", "any", 3),
    ("closed-in-future", "rules", "case", 2),
    ("update-after-close", "state", "case", 3),
)

_BUILDERS: dict[str, Builder] = {
    "not-json": _not_json,
    "invalid-utf8": _latin1,
    "deeply-nested": _nested,
    "oversized": _oversized,
    "unknown-type": _header_case(
        "ce_type",
        lambda g, _: g.rng.choice((b"case-reopened", b"volunteer-promoted", b"CaseOpened")),
        "unknown_event_type",
    ),
    "missing-ce-id": _header_case("ce_id", lambda g, _: None, "missing_header"),
    "missing-ce-type": _header_case("ce_type", lambda g, _: None, "missing_header"),
    "wrong-specversion": _header_case(
        "ce_specversion", lambda g, _: g.rng.choice((b"0.3", b"2.0")), "unsupported_specversion"
    ),
    "bad-header-encoding": _header_case("ce_type", lambda g, i: i.kind.encode() + b"\xff", "invalid_header"),
    "wrong-content-type": _header_case(
        "content_type",
        lambda g, _: g.rng.choice((b"application/xml", b"text/csv")),
        "unsupported_content_type",
    ),
    "bad-ce-id": _header_case("ce_id", lambda g, i: i.record.key, "invalid_header"),
    "bad-ce-time": _header_case("ce_time", lambda g, _: b"03/02/2026 10:30 AM", "invalid_header"),
    "bad-key": _key,
    "other-partners-source": _header_case("ce_source", _other_source, "source_mismatch"),
    "bad-a-number": _schema(_bad_a_number),
    "bad-language": _schema(_bad_language),
    "missing-field": _schema(_missing),
    "bad-email": _schema(_bad_email),
    "extra-field": _schema(_extra),
    "wrong-type": _schema(_wrong_type),
    "bad-enum": _schema(_bad_enum),
    "birth-in-future": _born_later,
    "unknown-facility": _rule(_unknown_facility),
    "unknown-court": _rule(_unknown_court),
    "hearing-in-past": _rule(_hearing_past),
    "detained-in-future": _rule(_detained_future),
    "placeholder-a-number": _rule(_placeholder),
    "invalid-phone": _rule(_bad_phone),
    "closed-in-future": _closed_future,
}


# -- one record at a time (the demo) -------------------------------------------------------------------


class Network:
    """The same synthetic volunteers and cases as :func:`simulate`, one valid registration at a time.

    For traffic paced in real time (``lastline-intake simulate``, the ``make run`` demo): the caller
    decides when each is sent and may change a case's facts to make it hard to place.
    """

    def __init__(self, partner_ids: Sequence[str], *, today: date, seed: int | str) -> None:
        if not partner_ids:
            raise ValueError("at least one partner")
        self._g = _Generator(tuple(partner_ids), today, random.Random(seed))  # noqa: S311 (not secrets)

    def volunteer(self, partner_id: str) -> VolunteerRegisteredSubmission:
        submission = self._g._volunteer_submission(self._g._new_volunteer(partner_id), "register")
        assert isinstance(submission, VolunteerRegisteredSubmission)
        return submission

    def case(self, partner_id: str, *, hearing: date, external_id: str | None = None) -> CaseOpenedSubmission:
        """A new client's case at a facility near the partner, its next hearing on ``hearing``."""
        case = self._g._new_case(partner_id)
        case.fields["next_hearing_date"] = hearing
        return CaseOpenedSubmission(
            external_id=external_id or case.external_id, client=case.client, **case.fields, **case.extra
        )

    def facilities(self, partner_id: str) -> list[reference.Facility]:
        """The facilities the partner's cases are at (its region's)."""
        return list(self._g.facilities[partner_id])

    def court_of(self, facility_code: str) -> str:
        """The immigration court that hears the cases of a facility."""
        return self._g.court_of[facility_code]
