"""`lastline-reporting` / `python -m lastline_reporting`: serve, migrate, or rebuild the read models."""

from __future__ import annotations

import asyncio

import typer

from lastline_reporting.app import runtime, settings
from lastline_reporting.rebuild import CHUNK
from lastline_reporting.rebuild import rebuild as run_rebuild
from lastline_shared.logging import configure_logging
from lastline_shared.service_cli import service_cli

commands = typer.Typer()


@commands.command()
def rebuild(
    chunk: int = typer.Option(CHUNK, min=100, help="Events folded in memory per write"),
    progress: bool = typer.Option(True, help="Show a progress bar"),
) -> None:
    """Replay every topic from the beginning into new read-model tables, then swap them in."""
    configure_logging(settings)
    result = asyncio.run(run_rebuild(settings, chunk=chunk, show_progress=progress))
    typer.echo(
        f"generation {result.generation} is current (was {result.previous}): {result.events:,} events "
        f"in {result.seconds:.1f} s ({result.rate:,.0f} events/s), {result.skipped} skipped"
    )


main = service_cli(runtime, extra=commands)

if __name__ == "__main__":
    main()
