"""``lastline-intake partners ...``: create partners, issue and revoke their API keys;
``lastline-intake erase-expired``: erase client PII whose retention period has passed;
``lastline-intake simulate``: partners' traffic in real time, the demo (:mod:`lastline_intake.demo`).

Every command first brings intake's schema up to date, so it works on a fresh database. Keys are
printed once, to stdout; warnings go to stderr so that stdout can be piped into a secret store.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from lastline_intake.partners import (
    KeyInfo,
    Partner,
    PartnerError,
    PartnerKind,
    PartnerRepository,
    parse_key,
)
from lastline_intake.retention import Erased, Retention
from lastline_shared.contracts.topics import partner_topic_partitions, partner_topics
from lastline_shared.kafka_admin import ensure_topics
from lastline_shared.logging import configure_logging
from lastline_shared.runtime import ServiceRuntime

T = TypeVar("T")


class Via(enum.StrEnum):
    kafka = "kafka"
    http = "http"


STORE_KEY_WARNING = (
    "warning: this API key is shown only once and cannot be recovered (Lastline keeps only its "
    "hash). Store it now in the partner's secret store; if it is lost, issue a new one and "
    "revoke this one."
)


async def create_partner(
    runtime: ServiceRuntime,
    repository: PartnerRepository,
    partner_id: str,
    *,
    name: str,
    kind: PartnerKind | str,
    email: str,
) -> str:
    """Create a partner, its first API key (returned: the only copy) and its Kafka topics.

    Raises ``PartnerExists`` for a taken id. The partner is committed only once its topics exist;
    topics left by a failed attempt are reused by the next one.
    """
    async with runtime.sessions() as session, session.begin():
        partner = await repository.create_partner(
            session, partner_id, name=name, kind=kind, contact_email=email
        )
        key = await repository.issue_key(session, partner.partner_id)
        await ensure_topics(
            runtime.settings.kafka_bootstrap_servers,
            partner_topic_partitions(partner.partner_id, runtime.settings.topic_partitions),
        )
    return key


def partners_cli(runtime: ServiceRuntime, repository: PartnerRepository) -> typer.Typer:
    cli = typer.Typer(name="partners", help="Partner organizations and their API keys.", no_args_is_help=True)

    @cli.command()
    def create(
        partner_id: Annotated[str, typer.Argument(help="A slug: 2 to 40 of a-z, 0-9 and '-'.")],
        name: Annotated[str, typer.Option(help="The organization's display name.")],
        kind: Annotated[PartnerKind, typer.Option(help="What kind of organization it is.")],
        email: Annotated[str, typer.Option(help="Contact email of the partner's coordinator.")],
    ) -> None:
        """Create a partner, its Kafka topics and its first API key (printed once)."""

        async def work() -> str:
            return await create_partner(runtime, repository, partner_id, name=name, kind=kind, email=email)

        key = _run(runtime, work)
        submissions, rejections = partner_topics(partner_id)
        typer.echo(f"partner_id: {partner_id}")
        typer.echo(f"submissions_topic: {submissions}")
        typer.echo(f"rejections_topic: {rejections}")
        _echo_key(key)

    @cli.command("list")
    def list_() -> None:
        """List partners and their keys (ids and dates, never the keys)."""

        async def work() -> None:
            async with runtime.sessions() as session:
                partners = await repository.list_partners(session)
                keys = await repository.list_keys(session)
            _echo_listing(partners, keys)

        _run(runtime, work)

    @cli.command("issue-key")
    def issue_key(partner_id: Annotated[str, typer.Argument(help="The partner's id.")]) -> None:
        """Issue another API key for a partner (printed once); older keys stay valid until revoked."""

        async def work() -> str:
            async with runtime.sessions() as session, session.begin():
                return await repository.issue_key(session, partner_id)

        _echo_key(_run(runtime, work))

    @cli.command("revoke-key")
    def revoke_key(
        key_id: Annotated[str, typer.Argument(help="The key's id (the part after 'll_'), see 'list'.")],
    ) -> None:
        """Revoke an API key: it stops working at once."""
        parsed = parse_key(key_id)
        if parsed is not None:  # a whole key pasted in: its id is enough
            key_id = parsed.key_id

        async def work() -> None:
            async with runtime.sessions() as session, session.begin():
                key = await repository.revoke_key(session, key_id)
            typer.echo(f"revoked key {key.key_id} of partner {key.partner_id} at {key.revoked_at}")

        _run(runtime, work)

    return cli


def intake_cli(runtime: ServiceRuntime, repository: PartnerRepository, retention: Retention) -> typer.Typer:
    """Intake's own commands: ``partners ...`` and ``erase-expired`` (merged into the service CLI)."""
    cli = typer.Typer()
    cli.add_typer(partners_cli(runtime, repository))

    @cli.command()
    def simulate(
        *,
        partner: Annotated[
            list[str] | None,
            typer.Option(
                help="Send as this partner (repeat for several); created if missing. "
                "Default: the demo network's five partners."
            ),
        ] = None,
        volunteers: Annotated[int, typer.Option(min=0, help="Volunteers registered first.")] = 300,
        cases: Annotated[int, typer.Option(min=0, help="Cases referred after them, one at a time.")] = 300,
        rate: Annotated[float, typer.Option(min=0.001, help="Cases per second, on average.")] = 0.5,
        via: Annotated[Via, typer.Option(help="The partner's topic, or the HTTP API with an API key.")] = (
            Via.kafka
        ),
        intake_url: Annotated[
            str | None, typer.Option(help="Intake's base URL (HTTP API, facility pause).")
        ] = None,
        api_key: Annotated[
            str | None,
            typer.Option(help="With --via http and one --partner: send with this key, no database access."),
        ] = None,
        seed: Annotated[int, typer.Option(help="The same seed gives the same volunteers.")] = 7,
        answer_from: Annotated[
            str | None,
            typer.Option(help="The mail catcher's URL: volunteers answer the proposals emailed there."),
        ] = None,
        matching_url: Annotated[
            str | None,
            typer.Option(
                help="Send the answers here, not to the links' own address (in Docker: the "
                "matching container)."
            ),
        ] = None,
        answer_within: Annotated[
            float, typer.Option(min=0, help="Seconds a volunteer takes to answer, at most.")
        ] = 8.0,
        stay: Annotated[bool, typer.Option(help="Keep answering after the last case until stopped.")] = False,
        progress: Annotated[
            bool | None, typer.Option(help="A progress bar (default: when the output is a terminal).")
        ] = None,
    ) -> None:
        """Simulate partners: register volunteers, then refer cases over time (synthetic data).

        Some cases cannot be placed (a rare language, a paused facility, a hearing in two days) and
        some are rejected: escalations and rejections appear too.
        """
        from lastline_intake import demo

        options = demo.Options(
            partners=tuple(partner or ()),
            volunteers=volunteers,
            cases=cases,
            rate=rate,
            via=via.value,
            intake_url=intake_url or f"http://127.0.0.1:{runtime.settings.http_port}",
            api_key=api_key,
            seed=seed,
            answer_from=answer_from,
            answer_within_s=answer_within,
            matching_url=matching_url,
            stay=stay,
            bar=progress,
        )
        configure_logging(runtime.settings)
        try:
            counts = asyncio.run(demo.run(runtime, repository, options))
        except (PartnerError, ValueError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(" ".join(f"{key}={value}" for key, value in sorted(counts.items())))

    @cli.command("erase-expired")
    def erase_expired() -> None:
        """Erase client PII whose retention period (INTAKE_PII_RETENTION_DAYS) has passed, now.

        The service does the same every hour; this is for a first run or a check.
        """

        async def work() -> Erased:
            return await retention.erase_all(runtime.sessions, now=datetime.now(UTC))

        erased = _run(runtime, work)
        typer.echo(f"retention_days: {retention.period.days}")
        typer.echo(f"cases: {erased.cases}")
        typer.echo(f"quarantine_values: {erased.quarantine_values}")
        typer.echo(f"held_submissions: {erased.held_submissions}")

    return cli


def _run(runtime: ServiceRuntime, work: Callable[[], Awaitable[T]]) -> T:
    """Migrate, do ``work``, close the pool; a refused operation exits 1 with its reason."""

    async def main() -> T:
        try:
            await runtime.migrate()
            return await work()
        finally:
            await runtime.engine.dispose()

    configure_logging(runtime.settings)
    try:
        return asyncio.run(main())
    except PartnerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            typer.echo(f"error: {field}: {error['msg']}", err=True)
        raise typer.Exit(1) from exc


def _echo_key(plaintext: str) -> None:
    key = parse_key(plaintext)
    assert key is not None  # we made it
    typer.echo(f"key_id: {key.key_id}")
    typer.echo(f"api_key: {plaintext}")
    typer.echo(STORE_KEY_WARNING, err=True)


def _echo_listing(partners: list[Partner], keys: list[KeyInfo]) -> None:
    for partner in partners:
        state = "active" if partner.active else "inactive"
        typer.echo(
            f"{partner.partner_id}\t{partner.kind}\t{state}\t{partner.name}\t"
            f"{partner.contact_email}\tcreated {partner.created_at:%Y-%m-%d}"
        )
        for key in (k for k in keys if k.partner_id == partner.partner_id):
            status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "valid"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            typer.echo(f"  key {key.key_id}\t{status}\tcreated {key.created_at:%Y-%m-%d}\tlast used {used}")
