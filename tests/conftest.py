"""Fixtures shared by the whole suite.

Integration and end-to-end tests run against the real PostgreSQL and Kafka of `dtm stack up`
(or `DTM_DATABASE_URL` / `DTM_KAFKA_BOOTSTRAP`). Each test session gets its own database
(`dtm_test_<id>`, provisioned like production: one role per service owning its schema) and its
own topic prefix, so sessions running side by side never see each other's data or events.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("registration", "sites", "reporting")


@dataclass
class StackEnv:
    admin_url: str
    database: str
    kafka_bootstrap: str
    topic_prefix: str
    private_key: bytes
    public_key_file: Path

    def service_url(self, service: str) -> str:
        from dtm_cli.stack import service_database_url, with_database

        return service_database_url(service, with_database(self.admin_url, self.database))

    def env(self, service: str) -> dict[str, str]:
        """Environment variables for a service process in this test session."""
        return {
            "DTM_DATABASE_URL": self.service_url(service),
            "DTM_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "DTM_TOPIC_PREFIX": self.topic_prefix,
            "DTM_JWT_PUBLIC_KEY_FILE": str(self.public_key_file),
            "DTM_LOG_LEVEL": "WARNING",
        }

    def settings(self, service: str, **overrides: Any) -> Any:
        from dtm_cli.services import entry

        values = {
            "database_url": self.service_url(service),
            "kafka_bootstrap": self.kafka_bootstrap,
            "topic_prefix": self.topic_prefix,
            "jwt_public_key_file": self.public_key_file,
            "log_level": "WARNING",
            "outbox_poll_seconds": 0.1,
        }
        values.update(overrides)
        return entry(service).settings(**values)

    def token(self, org: str, *scopes: str, **kw: Any) -> str:
        from dtm_shared.auth import mint_token

        return mint_token(self.private_key, org=org, scopes=scopes, **kw)

    def headers(self, org: str, *scopes: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(org, *scopes)}"}


@contextlib.contextmanager
def fresh_env(keys_dir: Path, *, migrate: bool) -> Iterator[StackEnv]:
    """A database of its own (provisioned like production) and a topic prefix of its own."""
    from dtm_cli import stack
    from dtm_shared.auth import generate_dev_keypair

    admin = stack.admin_database_url()
    suffix = uuid.uuid4().hex[:10]
    database = f"dtm_test_{suffix}"
    prefix = f"test-{suffix}."
    asyncio.run(stack.provision_database(admin, database))
    asyncio.run(stack.create_topics(stack.kafka_bootstrap(), prefix=prefix))
    private, public = generate_dev_keypair(keys_dir)
    env = StackEnv(admin, database, stack.kafka_bootstrap(), prefix, private.read_bytes(), public)
    try:
        if migrate:
            migrate_all(env)
        yield env
    finally:
        if not os.environ.get("DTM_KEEP_TEST_DB"):
            asyncio.run(stack.drop_database(admin, database))
            with contextlib.suppress(Exception):
                asyncio.run(stack.delete_topics(stack.kafka_bootstrap(), prefix))


def migrate_all(env: StackEnv) -> None:
    from dtm_cli.services import entry
    from dtm_shared.migrations import upgrade

    for service in SERVICES:
        svc = entry(service)
        if (svc.migrations_dir / "versions").is_dir():
            upgrade(svc.migrations_dir, env.settings(service))


@pytest.fixture(scope="session")
def stack_up() -> None:
    from dtm_cli import stack

    if not os.environ.get("DTM_SKIP_STACK_UP"):
        stack.up()


@pytest.fixture(scope="session")
def test_env(stack_up: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEnv]:
    """A fresh database and topic prefix on the real servers for this test session."""
    with fresh_env(tmp_path_factory.mktemp("keys"), migrate=False) as env:
        yield env


@pytest.fixture(scope="session")
def migrated(test_env: StackEnv) -> StackEnv:
    """The session's database with every service's migrations applied."""
    migrate_all(test_env)
    return test_env


AppClientFactory = Callable[[str], Awaitable[httpx.AsyncClient]]


@pytest.fixture(scope="session")
async def api(migrated: StackEnv) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """`api("sites")`: an httpx client on that service's app, run in-process with its lifespan.

    Each call gives a new client on the same running app, so a test that sets default headers on
    its client does not leak them into other tests."""
    from asgi_lifespan import LifespanManager

    from dtm_cli.services import entry

    stack_ = contextlib.AsyncExitStack()
    transports: dict[str, httpx.ASGITransport] = {}
    async with stack_:
        for service in SERVICES:
            if importlib.util.find_spec(f"{service}.main") is None:
                continue  # a service not built yet
            module = importlib.import_module(f"{service}.main")
            app = module.create_app(migrated.settings(service))
            manager = await stack_.enter_async_context(LifespanManager(app))
            transports[service] = httpx.ASGITransport(app=manager.app)

        def client(service: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                transport=transports[service], base_url=f"http://{service}.test:{entry(service).port}"
            )

        yield client


@contextlib.asynccontextmanager
async def running(work: Awaitable[None], stop: Callable[[], None]) -> AsyncIterator[asyncio.Task[None]]:
    """Run a worker (relay, consumer) as a task for the duration of a block."""
    task = asyncio.ensure_future(work)
    try:
        yield task
    finally:
        stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns a truthy value (or raises no AssertionError)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = await check()
            if result:
                return result
        except AssertionError as exc:
            last = exc
        await asyncio.sleep(interval)
    if last:
        raise last
    raise AssertionError(f"condition not met within {timeout}s")


# -- real processes (end-to-end) ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class ProcessGroup:
    """Starts `dtm` sub-commands as real processes with the session's environment."""

    def __init__(self, env: StackEnv, logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: list[Process] = []

    def start(self, service: str, *args: str, port: int | None = None) -> Process:
        cmd = [sys.executable, "-m", "dtm_cli", *args]
        if port:
            cmd += ["--port", str(port)]
        log = self.logs / f"{'-'.join(args)}.log"
        popen = subprocess.Popen(
            cmd,
            env={**os.environ, **self.env.env(service)},
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        proc = Process("-".join(args), popen, log, port)
        self.procs.append(proc)
        return proc

    def serve(self, service: str) -> Process:
        proc = self.start(service, "serve", service, port=free_port())
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited: {proc.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(proc.base_url + "/health/ready", timeout=1).status_code == 200:
                    return proc
            time.sleep(0.2)
        raise RuntimeError(f"{proc.name} not ready: {proc.log.read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        for proc in self.procs:
            try:
                proc.popen.wait(15)
            except subprocess.TimeoutExpired:
                proc.popen.kill()


@pytest.fixture(scope="module")
def isolated(stack_up: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackEnv]:
    """A migrated database and topics of the test module's own: what it counts is only its data."""
    with fresh_env(tmp_path_factory.mktemp("keys"), migrate=True) as env:
        yield env


@pytest.fixture(scope="module")
def processes(isolated: StackEnv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessGroup]:
    """Real `dtm` processes on the module's own database and topics (`processes.env`)."""
    group = ProcessGroup(isolated, tmp_path_factory.mktemp("process-logs"))
    try:
        yield group
    finally:
        group.stop()
