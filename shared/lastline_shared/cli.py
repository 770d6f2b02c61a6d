"""The ``lastline`` command. Services with commands of their own (intake's partner creation) ship
their own CLI; shared ones go here as further ``@app.command()`` functions."""

from __future__ import annotations

import enum
import re
from datetime import timedelta
from typing import Annotated

import typer

from lastline_shared.auth import issue_staff_token
from lastline_shared.settings import SERVICE_SETTINGS, ServiceSettings

app = typer.Typer(help="Lastline operations.", no_args_is_help=True, add_completion=False)

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``8h``, ``7d`` or combinations such as ``1h30m``."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 8h, 7d, 1h30m)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    duration = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if duration <= timedelta(0):
        raise ValueError("duration must be positive")
    return duration


class RoleChoice(enum.StrEnum):
    staff = "staff"
    admin = "admin"


def _settings(service: str | None) -> ServiceSettings:
    if service is None:  # the global, unprefixed variables every service falls back to
        return ServiceSettings(service_name="lastline")
    return SERVICE_SETTINGS[service]()


@app.callback()
def main() -> None:
    """Lastline operations (settings come from the same environment variables as the services)."""


@app.command()
def token(
    sub: Annotated[str, typer.Option(help="Who the token is for (a staff account id or email).")],
    role: Annotated[RoleChoice, typer.Option(help="staff, or admin (implies staff).")] = (RoleChoice.staff),
    ttl: Annotated[str, typer.Option(help="Lifetime: 30m, 8h, 7d, 1h30m, ...")] = "8h",
    service: Annotated[
        str | None,
        typer.Option(help="Read this service's settings (its env prefix) instead of the globals."),
    ] = None,
) -> None:
    """Print a signed staff token; send it as the header 'Authorization: Bearer <token>'."""
    if service is not None and service not in SERVICE_SETTINGS:
        raise typer.BadParameter(f"one of {', '.join(SERVICE_SETTINGS)}", param_hint="--service")
    try:
        lifetime = parse_duration(ttl)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--ttl") from exc
    settings = _settings(service)
    if settings.uses_dev_jwt_secret:
        typer.echo("warning: signed with the public development secret (AUTH_JWT_SECRET unset)", err=True)
    if settings.auth_jwks_url:
        typer.echo(
            "warning: AUTH_JWKS_URL is set, so services accept only the OIDC provider's tokens, not this one",
            err=True,
        )
    typer.echo(issue_staff_token(settings, sub, role.value, lifetime))
