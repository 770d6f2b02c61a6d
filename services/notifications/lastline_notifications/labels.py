"""Words for the contracts' codes in the languages emails are written in (English, Spanish).

A code without a translation reads as itself with spaces, so a new enum member never breaks an email.
Language names come from pycountry's ISO 639-3 data and its translations.
"""

from __future__ import annotations

import gettext
from functools import cache

import pycountry

TRANSLATED = ("eng", "spa")
"""ISO 639-3 codes of the languages the templates are written in; English is the fallback."""

_LOCALE = {"eng": "en", "spa": "es"}

_LABELS: dict[str, dict[str, str]] = {
    "eng": {
        # roles
        "attorney": "attorney",
        "accredited_representative": "accredited representative",
        "law_student": "law student",
        "paralegal": "paralegal",
        "mentor": "mentor",
        "interpreter": "interpreter",
        "medical_evaluator": "medical evaluator",
        "psych_evaluator": "psychological evaluator",
        "country_conditions_expert": "country-conditions expert",
        # case types
        "removal_defense": "removal defense",
        "asylum": "asylum",
        "withholding_cat": "withholding of removal / CAT",
        "cancellation_of_removal": "cancellation of removal",
        "bond": "bond",
        "parole": "parole",
        "credible_fear": "credible fear",
        "reasonable_fear": "reasonable fear",
        "motion_to_reopen": "motion to reopen",
        "bia_appeal": "BIA appeal",
        "federal_habeas": "federal habeas",
        # why a proposal fits
        "role_fits": "you take on this role",
        "language_shared": "you speak the client's language",
        "interpreter_available": "an interpreter is available",
        "practice_area": "it is in your practice areas",
        "experience_sufficient": "your experience fits the case",
        "mentor_available": "a mentor is available to you",
        "bar_admission": "your bar admission fits",
        "facility_reachable": "you can reach the facility",
        "remote_ok": "you work remotely",
        "capacity_available": "you have room for a case",
        "facility_open": "the facility is open for legal visits",
        "not_declined_before": "you have not declined it before",
        "staff_override": "campaign staff chose you",
        # why an offer was withdrawn / a placement ended
        "filled": "another volunteer accepted first",
        "case_closed": "the case was closed",
        "case_changed": "the case changed and no longer fits",
        "volunteer_withdrew": "you withdrew",
        "facility_paused": "placements at the facility are paused",
        "reoptimised": "the case went to a better-placed volunteer",
        "conflict_discovered": "a conflict of interest came to light",
        "client_declined": "the client declined",
        "case_transferred": "the case was transferred",
        # withdrawals
        "no_capacity": "no capacity",
        "left_network": "you left the network",
        "unresponsive": "no answer to recent offers",
        "removed_by_staff": "campaign staff removed you",
        "other": "other",
    },
    "spa": {
        "attorney": "abogado/a",
        "accredited_representative": "representante acreditado/a",
        "law_student": "estudiante de derecho",
        "paralegal": "asistente legal",
        "mentor": "mentor/a",
        "interpreter": "intérprete",
        "medical_evaluator": "evaluador/a médico/a",
        "psych_evaluator": "evaluador/a psicológico/a",
        "country_conditions_expert": "experto/a en condiciones del país",
        "removal_defense": "defensa contra la deportación",
        "asylum": "asilo",
        "withholding_cat": "suspensión de la deportación / CAT",
        "cancellation_of_removal": "cancelación de la deportación",
        "bond": "fianza",
        "parole": "permiso de permanencia (parole)",
        "credible_fear": "miedo creíble",
        "reasonable_fear": "miedo razonable",
        "motion_to_reopen": "moción para reabrir",
        "bia_appeal": "apelación ante la BIA",
        "federal_habeas": "hábeas corpus federal",
        "role_fits": "usted asume este rol",
        "language_shared": "habla el idioma del cliente",
        "interpreter_available": "hay un intérprete disponible",
        "practice_area": "es una de sus áreas de práctica",
        "experience_sufficient": "su experiencia corresponde al caso",
        "mentor_available": "tendrá un/a mentor/a",
        "bar_admission": "su colegiatura corresponde",
        "facility_reachable": "puede llegar al centro de detención",
        "remote_ok": "trabaja a distancia",
        "capacity_available": "tiene lugar para un caso",
        "facility_open": "el centro admite visitas legales",
        "not_declined_before": "no lo ha rechazado antes",
        "staff_override": "el equipo de la campaña le eligió",
        "filled": "otra persona voluntaria aceptó primero",
        "case_closed": "el caso se cerró",
        "case_changed": "el caso cambió y ya no corresponde",
        "volunteer_withdrew": "usted se retiró",
        "facility_paused": "las asignaciones en el centro están en pausa",
        "reoptimised": "el caso pasó a otra persona mejor ubicada",
        "conflict_discovered": "surgió un conflicto de intereses",
        "client_declined": "el cliente lo rechazó",
        "case_transferred": "el caso fue transferido",
        "no_capacity": "sin disponibilidad",
        "left_network": "dejó la red",
        "unresponsive": "sin respuesta a las últimas ofertas",
        "removed_by_staff": "el equipo de la campaña le dio de baja",
        "other": "otro",
    },
}


def template_language(preferred: str | None) -> str:
    """The language to write in: the recipient's preferred one where translated, else English."""
    return preferred if preferred in TRANSLATED else "eng"


def label(code: object, language: str) -> str:
    value = str(getattr(code, "value", code))
    return _LABELS.get(language, {}).get(value) or _LABELS["eng"].get(value) or value.replace("_", " ")


@cache
def _iso639_translation(language: str) -> gettext.NullTranslations:
    locale = _LOCALE.get(language)
    if locale is None or locale == "en":
        return gettext.NullTranslations()
    return gettext.translation("iso639-3", pycountry.LOCALES_DIR, languages=[locale], fallback=True)


def language_name(code: str, language: str) -> str:
    """``spa`` -> "Spanish" (in English) or "español" (in Spanish); unknown codes as themselves."""
    found = pycountry.languages.get(alpha_3=code)
    if found is None:
        return code
    return _iso639_translation(language).gettext(found.name)
