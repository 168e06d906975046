"""`dtm`: the command line for everything an operator runs.

Every sub-command imports what it needs when it runs, so `dtm --help` is instant and nothing is
built at import time.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="dtm-platform: displacement tracking (registration, sites, reporting).", no_args_is_help=True)
stack_app = typer.Typer(help="The local stack: PostgreSQL and Apache Kafka without Docker.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")


@stack_app.command("up")
def stack_up() -> None:
    """Install (if missing), start and provision PostgreSQL and Kafka. Idempotent."""
    from dtm_cli import stack

    stack.up()


@stack_app.command("down")
def stack_down() -> None:
    """Stop what `dtm stack up` started (and nothing else)."""
    from dtm_cli import stack

    stack.down()


@stack_app.command("status")
def stack_status() -> None:
    """Show whether PostgreSQL and Kafka are running."""
    from dtm_cli import stack

    for name, state in stack.status().items():
        typer.echo(f"{name}: {state}")


def main() -> None:
    app()
