"""The command line every service has: ``serve`` (the default) and ``migrate``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import typer

from lastline_shared.logging import configure_logging
from lastline_shared.runtime import ServiceRuntime


def service_cli(runtime: ServiceRuntime, extra: typer.Typer | None = None) -> Callable[[], None]:
    cli = typer.Typer(help=f"Lastline {runtime.name} service", no_args_is_help=False)

    @cli.callback(invoke_without_command=True)
    def default(ctx: typer.Context) -> None:
        if ctx.invoked_subcommand is None:
            runtime.serve()

    @cli.command()
    def serve() -> None:
        """Run the service until SIGTERM."""
        runtime.serve()

    @cli.command()
    def migrate() -> None:
        """Bring the service's schema up to date, then exit."""
        configure_logging(runtime.settings)
        asyncio.run(runtime.migrate())

    if extra is not None:
        cli.add_typer(extra)
    return cli
