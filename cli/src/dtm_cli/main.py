"""`dtm`: the command line for everything an operator runs.

Every sub-command imports what it needs when it runs, so `dtm --help` is instant and nothing is
built at import time.
"""

from __future__ import annotations

import asyncio
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="dtm-platform: displacement tracking (registration, sites, reporting).", no_args_is_help=True)
stack_app = typer.Typer(help="The local stack: PostgreSQL and Apache Kafka without Docker.", no_args_is_help=True)
db_app = typer.Typer(help="Database administration.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")


class Service(StrEnum):
    registration = "registration"
    sites = "sites"
    reporting = "reporting"


class MigrateTarget(StrEnum):
    registration = "registration"
    sites = "sites"
    reporting = "reporting"
    all = "all"


class RelayService(StrEnum):
    registration = "registration"
    sites = "sites"


class ConsumerService(StrEnum):
    registration = "registration"
    reporting = "reporting"


def _local_defaults(service: str) -> None:
    """Point a service at its own database role and the local stack unless told otherwise.

    `DTM_DATABASE_URL` naming the service's own role (containers) is used as it is; unset (the
    local stack) or naming another role (an admin URL given to `dtm stack up`), the service's URL
    is derived from it with the service's role and password.
    """
    from urllib.parse import urlsplit

    from dtm_cli import stack

    given = os.environ.get("DTM_DATABASE_URL")
    if not given or urlsplit(given).username != service:
        os.environ["DTM_DATABASE_URL"] = stack.service_database_url(service)
    os.environ.setdefault("DTM_KAFKA_BOOTSTRAP", stack.kafka_bootstrap())
    if not os.environ.get("DTM_JWKS_URL"):
        os.environ.setdefault("DTM_JWT_PUBLIC_KEY_FILE", str(_keys_dir() / "dev-public.pem"))


def _keys_dir() -> Path:
    from dtm_cli import stack

    return Path(os.environ.get("DTM_KEYS_DIR", str(stack.stack_dir() / "keys")))


# -- stack ---------------------------------------------------------------------------------------


@stack_app.command("up")
def stack_up() -> None:
    """Install (if missing), start and provision PostgreSQL and Kafka. Idempotent."""
    from dtm_cli import stack
    from dtm_shared.auth import generate_dev_keypair

    stack.up()
    generate_dev_keypair(_keys_dir())


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


# -- database and topics ---------------------------------------------------------------------------


@db_app.command("provision")
def db_provision() -> None:
    """Create the service roles, their schemas and the extensions (admin URL in DTM_DATABASE_URL)."""
    from urllib.parse import urlsplit

    from dtm_cli import stack

    admin = stack.admin_database_url()
    asyncio.run(stack.provision_database(admin, urlsplit(admin).path.lstrip("/") or "dtm"))
    typer.echo("provisioned roles and schemas: registration, sites, reporting")


@topics_app.command("create")
def topics_create() -> None:
    """Create the contract topics and their dead-letter topics (6 partitions, unlimited retention)."""
    from dtm_cli import stack

    prefix = os.environ.get("DTM_TOPIC_PREFIX", "")
    asyncio.run(stack.wait_for_kafka(stack.kafka_bootstrap()))
    names = asyncio.run(stack.create_topics(stack.kafka_bootstrap(), prefix=prefix))
    typer.echo("topics: " + ", ".join(names))


@app.command("migrate")
def migrate(
    target: Annotated[MigrateTarget, typer.Argument(help="A service, or all")] = MigrateTarget.all,
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
) -> None:
    """Run a service's Alembic migrations in its own schema."""
    from dtm_cli.services import entry
    from dtm_shared.migrations import upgrade

    names = [s.value for s in Service] if target == MigrateTarget.all else [target.value]
    saved = dict(os.environ)
    for name in names:
        os.environ.clear()
        os.environ.update(saved)
        _local_defaults(name)
        svc = entry(name)
        upgrade(svc.migrations_dir, svc.settings(), revision)
        typer.echo(f"{name}: migrated to {revision}")
    os.environ.clear()
    os.environ.update(saved)


# -- processes ---------------------------------------------------------------------------------------


@app.command("serve")
def serve(
    service: Service,
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: the service's)")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Run a service's API with uvicorn."""
    import uvicorn

    from dtm_cli.services import entry

    _local_defaults(service.value)
    svc = entry(service.value)
    uvicorn.run(
        svc.app_factory,
        factory=True,
        host=host,
        port=port or svc.port,
        workers=workers,
        log_level="warning",
        access_log=False,
        proxy_headers=True,
    )


@app.command("relay")
def relay(service: RelayService) -> None:
    """Run a service's outbox relay (publishes its events to Kafka)."""
    from dtm_cli.services import entry

    _local_defaults(service.value)
    asyncio.run(entry(service.value).workers().run_relay())


@app.command("consume")
def consume(service: ConsumerService) -> None:
    """Run a service's event consumer."""
    from dtm_cli.services import entry

    _local_defaults(service.value)
    asyncio.run(entry(service.value).workers().run_consumer())


# -- tokens ----------------------------------------------------------------------------------------


@app.command("token")
def token(
    org: Annotated[str, typer.Option(help="Organisation code (the `org` claim), e.g. DNDS, UNHCR")],
    scope: Annotated[list[str], typer.Option(help="A scope; repeat for several")],
    sub: Annotated[str | None, typer.Option(help="Subject (default: <org>-user)")] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 8 * 3600,
) -> None:
    """Mint a local token from the dev key (`.stack/keys`, never in git); prints only the token."""
    from dtm_shared.auth import SCOPES

    scopes = [s for item in scope for s in item.split()]
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        typer.echo(f"unknown scope(s): {' '.join(unknown)}; known: {' '.join(SCOPES)}", err=True)
        raise typer.Exit(2)
    typer.echo(mint_local_token(org, scopes, sub=sub, ttl=ttl))


def mint_local_token(org: str, scopes: list[str], *, sub: str | None = None, ttl: int = 8 * 3600) -> str:
    from dtm_shared.auth import generate_dev_keypair, mint_token
    from dtm_shared.settings import ServiceSettings

    private, _ = generate_dev_keypair(_keys_dir())
    settings = ServiceSettings()
    return mint_token(
        private.read_bytes(),
        org=org,
        scopes=scopes,
        sub=sub,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_seconds=ttl,
    )


# -- the whole system locally ------------------------------------------------------------------------


@app.command("up")
def up(
    demo: Annotated[bool, typer.Option(help="Load the demo data")] = True,
    keep_stack: Annotated[bool, typer.Option(help="Leave Postgres and Kafka running on exit")] = False,
) -> None:
    """Run everything locally: stack, migrations, APIs, relays, consumers, demo data. Ctrl-C stops."""
    from dtm_cli import local
    from dtm_cli import stack as stack_mod
    from dtm_shared.auth import generate_dev_keypair

    stack_mod.up()
    generate_dev_keypair(_keys_dir())
    migrate(MigrateTarget.all)
    local.run(demo=demo, keep_stack=keep_stack)


demo_app = typer.Typer(help="Demo data.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")


@demo_app.command("load")
def demo_load(
    registration_url: Annotated[str, typer.Option(help="Registration API")] = "http://127.0.0.1:8001",
    sites_url: Annotated[str, typer.Option(help="Sites API")] = "http://127.0.0.1:8002",
    scale: Annotated[int, typer.Option(help="One demo household per this many DTM households")] = 20,
) -> None:
    """Load demo sites and households (IOM DTM round 64 communes) through the APIs. Idempotent."""
    from dtm_cli import demo as demo_mod

    def token_for(org: str) -> str:
        return mint_local_token(org, ["admin"])

    typer.echo(demo_mod.load(registration_url, sites_url, token_for, scale=scale))


reporting_app = typer.Typer(help="Reporting read models.", no_args_is_help=True)
app.add_typer(reporting_app, name="reporting")


@reporting_app.command("rebuild")
def reporting_rebuild() -> None:
    """Replay both topics from the beginning into fresh read models and switch over atomically,
    while the API keeps answering. Prints a JSON summary."""
    from reporting import rebuild

    _local_defaults("reporting")
    rebuild.main()


@app.command("verify")
def verify() -> None:
    """Compare reporting's totals with the counts registration and sites report through their APIs.
    Exit 0 when they agree, 1 on any difference, 2 when a source cannot be read."""
    from reporting import verify as verify_mod

    _local_defaults("reporting")
    if not os.environ.get("DTM_VERIFY_TOKEN") and not os.environ.get("DTM_JWKS_URL"):
        local_key = _keys_dir() / "dev-private.pem"
        if local_key.exists():
            os.environ.setdefault("DTM_VERIFY_PRIVATE_KEY_FILE", str(local_key))
    verify_mod.main()


@app.command("asyncapi")
def asyncapi(
    output: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout")] = None,
) -> None:
    """Print (or write) the AsyncAPI 3.0 document generated from the event contracts."""
    import json

    from dtm_shared.events.asyncapi import build_asyncapi

    text = json.dumps(build_asyncapi(), indent=2, ensure_ascii=False) + "\n"
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        typer.echo(text, nl=False)


def main() -> None:
    app()
