"""The local stack without Docker: PostgreSQL from Debian packages and Apache Kafka from Maven Central.

`up` is idempotent: it installs what is missing, starts what is not running and provisions the
database (one login role per service owning its schema) and the Kafka topics. `down` stops only
what `up` started (a pid/marker file under `.stack/`). When `DTM_DATABASE_URL` or
`DTM_KAFKA_BOOTSTRAP` are set, nothing is started for that part and the given server is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

SERVICES = ("registration", "sites", "reporting")
PG_PORT_DEFAULT = 5433
KAFKA_PORT_DEFAULT = 9092
TOPIC_PARTITIONS = 6


def repo_root() -> Path:
    env = os.environ.get("DTM_HOME")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").exists() and (parent / "services").is_dir():
            return parent
    return Path.cwd()


def stack_dir() -> Path:
    return Path(os.environ.get("DTM_STACK_DIR", str(repo_root() / ".stack"))).resolve()


def _log(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


# ----------------------------------------------------------------------------------------------
# Database URLs
# ----------------------------------------------------------------------------------------------


def admin_database_url() -> str:
    """The URL of a role allowed to create databases, roles and schemas."""
    url = os.environ.get("DTM_DATABASE_URL")
    if url:
        return url
    port = int(os.environ.get("DTM_PG_PORT", PG_PORT_DEFAULT))
    return f"postgresql://postgres@127.0.0.1:{port}/dtm"


def service_password(service: str) -> str:
    return os.environ.get(f"DTM_DB_PASSWORD_{service.upper()}", f"{service}-dev")


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def service_database_url(service: str, admin_url: str | None = None) -> str:
    """The URL a service connects with: its own role, which can only touch its own schema."""
    parts = urlsplit(admin_url or admin_database_url())
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(service)}:{quote(service_password(service))}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def kafka_bootstrap() -> str:
    return os.environ.get("DTM_KAFKA_BOOTSTRAP", f"127.0.0.1:{KAFKA_PORT_DEFAULT}")


# ----------------------------------------------------------------------------------------------
# PostgreSQL
# ----------------------------------------------------------------------------------------------


@dataclass
class Postgres:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "pg" / "data"

    @property
    def run(self) -> Path:
        return self.root / "pg" / "run"

    @property
    def logfile(self) -> Path:
        return self.root / "pg" / "postgres.log"

    @property
    def marker(self) -> Path:
        return self.root / "pg" / "started-by-dtm"

    @property
    def port(self) -> int:
        return int(os.environ.get("DTM_PG_PORT", PG_PORT_DEFAULT))

    def bindir(self) -> Path | None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
        return Path(found[-1]).parent if found else None

    def install(self) -> Path:
        bindir = self.bindir()
        if bindir:
            return bindir
        _log("PostgreSQL not found: installing it from Debian packages")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql", "postgresql-contrib"], check=True, env=env)
        bindir = self.bindir()
        if not bindir:
            raise RuntimeError("PostgreSQL installation did not provide initdb")
        return bindir

    def _as_postgres(self, args: list[str], **kw: object) -> subprocess.CompletedProcess[bytes]:
        if os.geteuid() == 0:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=True, **kw)  # type: ignore[call-overload, no-any-return]

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def init(self, bindir: Path) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        _log(f"initialising a PostgreSQL cluster in {self.data}")
        for p in (self.root, self.root / "pg", self.data, self.run):
            p.mkdir(parents=True, exist_ok=True)
        for p in (self.root / "pg", self.data, self.run):
            self._chown(p)
        self.data.chmod(0o700)
        self._as_postgres(
            [
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ],
            stdout=subprocess.DEVNULL,
        )
        conf = self.data / "postgresql.auto.conf"
        with conf.open("a") as f:
            f.write(
                "\n".join(
                    [
                        f"port = {self.port}",
                        "listen_addresses = '127.0.0.1'",
                        f"unix_socket_directories = '{self.run}'",
                        "max_connections = 300",
                        "shared_buffers = '512MB'",
                        "max_wal_size = '4GB'",
                        "log_min_messages = warning",
                        "",
                    ]
                )
            )
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )

    def running(self) -> bool:
        pid = self.data / "postmaster.pid"
        return pid.exists() and _port_open("127.0.0.1", self.port)

    def start(self) -> None:
        bindir = self.install()
        self.init(bindir)
        if self.running():
            _log(f"PostgreSQL already running on 127.0.0.1:{self.port}")
            return
        if _port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken by another server; set DTM_PG_PORT")
        _log(f"starting PostgreSQL on 127.0.0.1:{self.port}")
        self.logfile.touch()
        self._chown(self.logfile)
        self._as_postgres(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.logfile),
                "-w",
                "-t",
                "60",
                "start",
            ],
            stdout=subprocess.DEVNULL,
        )
        self.marker.write_text(str(time.time()))

    def stop(self) -> None:
        if not self.marker.exists():
            return
        bindir = self.bindir()
        if bindir and (self.data / "postmaster.pid").exists():
            _log("stopping PostgreSQL")
            self._as_postgres(
                [str(bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                stdout=subprocess.DEVNULL,
            )
        self.marker.unlink(missing_ok=True)


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


async def provision_database(admin_url: str, database: str) -> None:
    """Create `database`, one login role per service owning its schema, and shared extensions.

    Each service role owns only its schema; PUBLIC loses every right on the database's `public`
    schema, so a role cannot read or write another service's tables. Extensions live in the
    `extensions` schema, usable by all.
    """
    import asyncpg

    server = await asyncpg.connect(with_database(admin_url, "postgres"))
    try:
        for service in SERVICES:
            exists = await server.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", service)
            pw = service_password(service).replace("'", "''")
            verb = "ALTER" if exists else "CREATE"
            await server.execute(f"{verb} ROLE \"{service}\" LOGIN PASSWORD '{pw}'")
        if not await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await server.execute(f'CREATE DATABASE "{database}"')
    finally:
        await server.close()
    conn = await asyncpg.connect(with_database(admin_url, database))
    try:
        await conn.execute(f'REVOKE ALL ON DATABASE "{database}" FROM PUBLIC')
        await conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
        await conn.execute("CREATE SCHEMA IF NOT EXISTS extensions")
        for ext in ("pg_trgm", "unaccent"):
            await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ext} SCHEMA extensions")
        for service in SERVICES:
            await conn.execute(f'GRANT CONNECT, TEMPORARY ON DATABASE "{database}" TO "{service}"')
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{service}" AUTHORIZATION "{service}"')
            await conn.execute(f'GRANT USAGE ON SCHEMA extensions TO "{service}"')
            await conn.execute(
                f'ALTER ROLE "{service}" IN DATABASE "{database}" SET search_path = "{service}", extensions'
            )
    finally:
        await conn.close()


async def drop_database(admin_url: str, database: str) -> None:
    import asyncpg

    server = await asyncpg.connect(with_database(admin_url, "postgres"))
    try:
        await server.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await server.close()


# ----------------------------------------------------------------------------------------------
# Kafka
# ----------------------------------------------------------------------------------------------


@dataclass
class Kafka:
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "kafka"

    @property
    def pidfile(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def port(self) -> int:
        return int(os.environ.get("DTM_KAFKA_PORT", KAFKA_PORT_DEFAULT))

    def libs(self) -> Path:
        pom = repo_root() / "deploy" / "kafka" / "pom.xml"
        version = _pom_property(pom, "kafka.version")
        cache = Path(os.environ.get("DTM_CACHE_DIR", str(Path.home() / ".cache" / "dtm")))
        libs = cache / f"kafka-{version}" / "libs"
        if not (libs / f"kafka_2.13-{version}.jar").exists():
            _log(f"resolving Apache Kafka {version} from Maven Central into {libs}")
            tmp = libs.with_name("libs.partial")
            shutil.rmtree(tmp, ignore_errors=True)
            subprocess.run(
                [
                    "mvn",
                    "-q",
                    "-B",
                    "-f",
                    str(pom),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={tmp}",
                    "-DincludeScope=runtime",
                ],
                check=True,
            )
            shutil.rmtree(libs, ignore_errors=True)
            tmp.rename(libs)
        return libs

    def _java(self, libs: Path, *args: str) -> list[str]:
        log4j = repo_root() / "deploy" / "kafka" / "log4j2.yaml"
        heap = os.environ.get("DTM_KAFKA_HEAP", "512m")
        return [
            "java",
            "-Xms256m",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
            *args,
        ]

    def configure(self, libs: Path) -> Path:
        data = self.home / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = self.home / "server.properties"
        controller = self.port + 1
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{controller}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                    f"log.dirs={data}",
                    f"num.partitions={TOPIC_PARTITIONS}",
                    "auto.create.topics.enable=false",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=6",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "log.retention.ms=-1",
                    "log.retention.bytes=-1",
                    "",
                ]
            )
        )
        if not (data / "meta.properties").exists():
            _log("formatting Kafka storage (KRaft, standalone)")
            subprocess.run(
                self._java(
                    libs,
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    "-t",
                    _new_cluster_id(),
                    "-c",
                    str(props),
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        return props

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid

    def start(self) -> None:
        if self.pid():
            _log(f"Kafka already running on 127.0.0.1:{self.port}")
            return
        if _port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken by another server; set DTM_KAFKA_PORT")
        libs = self.libs()
        props = self.configure(libs)
        _log(f"starting Apache Kafka (KRaft) on 127.0.0.1:{self.port}")
        log = (self.home / "kafka.log").open("ab")
        proc = subprocess.Popen(
            self._java(libs, "kafka.Kafka", str(props)),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pidfile.write_text(str(proc.pid))

    def stop(self) -> None:
        pid = self.pid()
        if not pid:
            self.pidfile.unlink(missing_ok=True)
            return
        _log("stopping Kafka")
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            time.sleep(0.1)
            try:
                os.kill(pid, 0)
            except OSError:
                break
        else:
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)


def _new_cluster_id() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _pom_property(pom: Path, name: str) -> str:
    import re

    m = re.search(rf"<{re.escape(name)}>([^<]+)</", pom.read_text())
    if not m:
        raise RuntimeError(f"{pom} has no <{name}>")
    return m.group(1)


async def wait_for_kafka(bootstrap: str, timeout: float = 120.0) -> None:
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    # While the broker starts, every attempt logs a connection error: expected, so not shown.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception as exc:  # the broker is still starting
            last = exc
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        await asyncio.sleep(1)
    raise RuntimeError(f"Kafka at {bootstrap} did not answer within {timeout:.0f}s: {last}")


async def create_topics(bootstrap: str, prefix: str = "", partitions: int = TOPIC_PARTITIONS) -> list[str]:
    """Create the contract topics and their dead-letter topics; existing ones are left alone."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    names = [f"{prefix}{t}" for base in ("dtm.registration", "dtm.sites") for t in (base, f"{base}.dlq")]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        todo = [
            NewTopic(n, partitions, 1, topic_configs={"retention.ms": "-1", "retention.bytes": "-1"})
            for n in names
            if n not in existing
        ]
        if todo:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(todo)
    finally:
        await admin.close()
    return names


async def delete_topics(bootstrap: str, prefix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    if not prefix:
        raise ValueError("refusing to delete the contract topics without a prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------


def up() -> None:
    root = stack_dir()
    root.mkdir(parents=True, exist_ok=True)
    external_db = bool(os.environ.get("DTM_DATABASE_URL"))
    external_kafka = bool(os.environ.get("DTM_KAFKA_BOOTSTRAP"))
    kafka = Kafka(root)
    if not external_kafka:
        kafka.start()  # JVM start-up overlaps with Postgres below
    if external_db:
        _log("DTM_DATABASE_URL is set: using that PostgreSQL, starting none")
    else:
        Postgres(root).start()
    admin = admin_database_url()
    asyncio.run(provision_database(admin, urlsplit(admin).path.lstrip("/") or "dtm"))
    _log("database provisioned: roles and schemas registration, sites, reporting")
    bootstrap = kafka_bootstrap()
    if external_kafka:
        _log(f"DTM_KAFKA_BOOTSTRAP is set: using {bootstrap}, starting none")
    asyncio.run(wait_for_kafka(bootstrap))
    topics = asyncio.run(create_topics(bootstrap))
    _log(f"Kafka ready at {bootstrap}; topics: {', '.join(topics)}")


def down() -> None:
    root = stack_dir()
    Kafka(root).stop()
    Postgres(root).stop()


def status() -> dict[str, str]:
    root = stack_dir()
    pg = Postgres(root)
    kafka = Kafka(root)
    out: dict[str, str] = {}
    if os.environ.get("DTM_DATABASE_URL"):
        out["postgres"] = "external (DTM_DATABASE_URL)"
    else:
        out["postgres"] = f"running on 127.0.0.1:{pg.port}" if pg.running() else "stopped"
    if os.environ.get("DTM_KAFKA_BOOTSTRAP"):
        out["kafka"] = f"external ({kafka_bootstrap()})"
    else:
        pid = kafka.pid()
        up_ = pid and _port_open("127.0.0.1", kafka.port)
        out["kafka"] = f"running on 127.0.0.1:{kafka.port} (pid {pid})" if up_ else "stopped"
    return out
