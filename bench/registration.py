"""Registration intake benchmark (issue 3).

On a database and topics of its own, with the registration API and its outbox relay running as
real processes (`dtm serve registration`, `dtm relay registration`):

1. batch registration throughput through `POST /v1/households/batch` (5,000 per request,
   `BENCH_CONCURRENCY` requests in flight), sustained over `BENCH_HOUSEHOLDS` households
   (default 100,000), outbox rows, history rows and duplicate detection included;
2. a raw COPY of the same kind of rows (households, members, history, outbox: already built,
   only the COPY is timed) into the same tables, in the same run, with the same concurrency;
   the ratio API / raw COPY;
   and the same ratio measured with API and raw COPY batches interleaved one at a time (same load
   from the rest of the machine for both);
3. single-household `POST /v1/households` latency (p50/p99) at a fixed request rate
   (`BENCH_RATE` per second for `BENCH_LATENCY_SECONDS`), open loop.

Run: `make bench` or `uv run python -m bench registration`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]

GIVEN_F = ["Aminata", "Fatoumata", "Mariam", "Awa", "Kadiatou", "Oumou", "Hawa", "Djeneba", "Assitan", "Rokia"]
GIVEN_M = ["Moussa", "Mamadou", "Oumar", "Ibrahim", "Seydou", "Boubacar", "Adama", "Souleymane", "Bakary", "Modibo"]
FAMILY = [
    "Traoré",
    "Diarra",
    "Coulibaly",
    "Keïta",
    "Koné",
    "Sangaré",
    "Cissé",
    "Maïga",
    "Touré",
    "Diallo",
    "Sidibé",
    "Dembélé",
    "Konaté",
    "Ouattara",
    "Sissoko",
    "Doumbia",
    "Guindo",
    "Togo",
    "Ag Mohamed",
    "Haïdara",
]
NEEDS = ["disability", "serious_medical_condition", "older_person_at_risk", "single_parent", "pregnant_or_lactating"]


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dtm_cli", *args], env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_household(rng: random.Random, i: int, origins: list[str], locations: list[str], tag: str) -> dict[str, Any]:
    """A realistic household: 1 to 9 members (about 5 on average), some phones and documents."""
    size = min(9, max(1, int(rng.gauss(5, 2))))
    family = rng.choice(FAMILY)
    reg = date(2024, 1, 1) + timedelta(days=rng.randint(0, 300))
    head_female = rng.random() < 0.4
    members = [
        {
            "given_name": rng.choice(GIVEN_F if head_female else GIVEN_M) + f" {i}",
            "family_name": family,
            "sex": "female" if head_female else "male",
            "date_of_birth": (date(1950, 1, 1) + timedelta(days=rng.randint(0, 50 * 365))).isoformat(),
            "relationship": "head",
            "specific_needs": [rng.choice(NEEDS)] if rng.random() < 0.1 else [],
            "phone": f"+223 7{rng.randint(0, 9_999_999):07d}" if rng.random() < 0.5 else None,
            "id_document_type": "nina" if rng.random() < 0.3 else None,
        }
    ]
    if members[0]["id_document_type"]:
        members[0]["id_document_number"] = f"{tag}-{i}"
    for k in range(1, size):
        female = rng.random() < 0.5
        member: dict[str, Any] = {
            "given_name": rng.choice(GIVEN_F if female else GIVEN_M),
            "family_name": family,
            "sex": "female" if female else "male",
            "relationship": "spouse" if k == 1 else "child",
            "specific_needs": [],
        }
        if rng.random() < 0.5:
            member["age_years"] = rng.randint(0, 17)
        else:
            member["date_of_birth"] = (reg - timedelta(days=rng.randint(30, 17 * 365))).isoformat()
        members.append(member)
    return {
        "external_id": f"{tag}-{i}",
        "population_group": rng.choice(["idp", "idp", "idp", "idp_returnee", "repatriate"]),
        "location_pcode": rng.choice(locations),
        "origin_pcode": rng.choice(origins),
        "displacement_reason": rng.choice(
            ["armed_conflict", "armed_conflict", "community_tension", "natural_disaster"]
        ),
        "displacement_date": (reg - timedelta(days=rng.randint(1, 700))).isoformat(),
        "registration_date": reg.isoformat(),
        "members": members,
    }


def _fix_group(h: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    if h["population_group"] == "idp_returnee":
        h["return_date"] = h["registration_date"]
    elif h["population_group"] == "repatriate":
        h["country_of_asylum"] = rng.choice(["BFA", "NER", "MRT", "DZA"])
        h["repatriation_date"] = h["registration_date"]
    return h


class Stack:
    """A database, topics, keys and the registration processes of the benchmark's own."""

    def __init__(self) -> None:
        from dtm_cli import stack

        self.stack = stack
        self.admin = stack.admin_database_url()
        suffix = uuid.uuid4().hex[:8]
        self.database = f"dtm_bench_{suffix}"
        self.prefix = f"bench-{suffix}."
        self.tmp = Path(tempfile.mkdtemp(prefix="dtm-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = _free_port()

    async def up(self, workers: int) -> None:
        from dtm_cli.services import entry
        from dtm_shared.auth import generate_dev_keypair
        from dtm_shared.migrations import upgrade

        await self.stack.provision_database(self.admin, self.database)
        await self.stack.create_topics(self.stack.kafka_bootstrap(), prefix=self.prefix)
        self.private, self.public = generate_dev_keypair(self.tmp / "keys")
        self.url = self.stack.service_database_url("registration", self.stack.with_database(self.admin, self.database))
        env = self.env()
        await asyncio.to_thread(
            upgrade,
            entry("registration").migrations_dir,
            entry("registration").settings(**{"database_url": env["DTM_DATABASE_URL"], "topic_prefix": self.prefix}),
        )
        full = {**os.environ, **env}
        logs = self.tmp / "logs"
        logs.mkdir()
        serve = ["serve", "registration", "--port", str(self.port), "--workers", str(workers)]
        self.procs.append(_spawn(serve, full, logs / "serve.log"))
        self.procs.append(_spawn(["relay", "registration"], full, logs / "relay.log"))
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.base_url}/health/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.3)
        raise RuntimeError("the registration service did not become ready: " + (logs / "serve.log").read_text()[-2000:])

    def env(self) -> dict[str, str]:
        return {
            "DTM_DATABASE_URL": self.url,
            "DTM_KAFKA_BOOTSTRAP": self.stack.kafka_bootstrap(),
            "DTM_TOPIC_PREFIX": self.prefix,
            "DTM_JWT_PUBLIC_KEY_FILE": str(self.public),
            "DTM_LOG_LEVEL": "WARNING",
        }

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, org: str) -> str:
        from dtm_shared.auth import mint_token

        return mint_token(self.private.read_bytes(), org=org, scopes=["households:read", "households:write"])

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self.url.replace("postgresql+asyncpg://", "postgresql://"),
            server_settings={"search_path": "registration,extensions"},
        )

    async def down(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        if not os.environ.get("BENCH_KEEP_DB"):
            with contextlib.suppress(Exception):
                await self.stack.drop_database(self.admin, self.database)
            with contextlib.suppress(Exception):
                await self.stack.delete_topics(self.stack.kafka_bootstrap(), self.prefix)


async def _post_batches(base_url: str, token: str, bodies: list[bytes], concurrency: int) -> tuple[float, int]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    created = 0
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal created
        while not queue.empty():
            body = queue.get_nowait()
            r = await client.post("/v1/households/batch", content=body, headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"batch failed: {r.status_code} {r.text[:500]}")
            created += r.json()["created"]

    async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return time.perf_counter() - started, created


def _copy_rows(households: list[dict[str, Any]], number_base: int, prefix: str) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the API writes for these households, built in advance (the COPY alone is timed)."""
    hh, mm, hist, out = [], [], [], []
    now = datetime.now(UTC)
    for k, h in enumerate(households):
        hid = uuid.uuid4()
        members = []
        for pos, m in enumerate(h["members"]):
            dob = date.fromisoformat(m["date_of_birth"]) if m.get("date_of_birth") else date(2015, 1, 1)
            mid = uuid.uuid4()
            mm.append(
                (
                    mid,
                    hid,
                    pos,
                    m["given_name"],
                    m["family_name"],
                    m["sex"],
                    dob,
                    "date_of_birth" not in m,
                    m["relationship"],
                    m["specific_needs"],
                    m.get("phone"),
                    m.get("id_document_type"),
                    m.get("id_document_number"),
                )
            )
            members.append(
                {
                    "member_id": str(mid),
                    "sex": m["sex"],
                    "date_of_birth": dob.isoformat(),
                    "date_of_birth_estimated": False,
                    "relationship": m["relationship"],
                    "specific_needs": m["specific_needs"],
                }
            )
        head = h["members"][0]
        hh.append(
            (
                hid,
                number_base + k,
                "raw-" + h["external_id"],
                "RAW",
                h["population_group"],
                "active",
                None,
                h["location_pcode"],
                h["origin_pcode"],
                h["displacement_reason"],
                date.fromisoformat(h["displacement_date"]),
                date.fromisoformat(h["registration_date"]),
                None,
                h.get("country_of_asylum"),
                None,
                f"{head['given_name']} {head['family_name']}".lower(),
                date.fromisoformat(head["date_of_birth"]),
            )
        )
        payload = json.dumps(
            {
                "aggregate_id": str(hid),
                "version": 1,
                "effective_date": h["registration_date"],
                "registration_number": f"MLI-HH-{number_base + k:06d}",
                **{
                    key: h.get(key)
                    for key in (
                        "population_group",
                        "location_pcode",
                        "origin_pcode",
                        "displacement_reason",
                        "displacement_date",
                        "registration_date",
                    )
                },
                "status": "active",
                "registered_by_org": "RAW",
                "members": members,
            }
        )
        hist.append((hid, 1, "dtm.household.registered.v1", date.fromisoformat(h["registration_date"]), payload))
        out.append(
            (
                uuid.uuid4(),
                prefix + "dtm.registration",
                str(hid),
                "dtm.household.registered.v1",
                UNPUBLISHED_SHARD,  # no relay owns it: written like the API's rows, never published
                "{}",
                payload,
                now,
            )
        )
    return {"households": hh, "members": mm, "history": hist, "outbox": out}


UNPUBLISHED_SHARD = 999

HOUSEHOLD_COPY_COLUMNS = (
    "id",
    "number",
    "external_id",
    "registered_by_org",
    "population_group",
    "status",
    "site_id",
    "location_pcode",
    "origin_pcode",
    "displacement_reason",
    "displacement_date",
    "registration_date",
    "return_date",
    "country_of_asylum",
    "repatriation_date",
    "head_name_key",
    "head_birth_date",
)


async def _raw_copy(stack: Stack, batches: list[dict[str, list[tuple[Any, ...]]]], concurrency: int) -> float:
    from dtm_shared.messaging.outbox import OUTBOX_COLUMNS
    from registration.repository import HISTORY_COLUMNS, MEMBER_COLUMNS

    queue: asyncio.Queue[dict[str, list[tuple[Any, ...]]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def worker() -> None:
        conn = await stack.connect()
        try:
            while not queue.empty():
                b = queue.get_nowait()
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "households", records=b["households"], columns=HOUSEHOLD_COPY_COLUMNS
                    )
                    await conn.copy_records_to_table("members", records=b["members"], columns=MEMBER_COLUMNS)
                    await conn.copy_records_to_table("household_history", records=b["history"], columns=HISTORY_COLUMNS)
                    await conn.copy_records_to_table("outbox", records=b["outbox"], columns=OUTBOX_COLUMNS)
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _latency(
    stack: Stack, rng: random.Random, origins: list[str], locations: list[str], rate: float, seconds: float
) -> dict[str, float]:
    token = stack.token("LATENCY")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    n = int(rate * seconds)
    bodies = [json.dumps(_fix_group(make_household(rng, i, origins, locations, "lat"), rng)).encode() for i in range(n)]
    latencies: list[float] = []
    errors = 0
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=30, limits=httpx.Limits(max_connections=200)
    ) as client:

        async def one(body: bytes) -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                r = await client.post("/v1/households", content=body, headers=headers)
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append(time.perf_counter() - t)
            if r.status_code != 201:
                errors += 1

        start = time.perf_counter()
        tasks = []
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body)))
        await asyncio.gather(*tasks)
    qs = statistics.quantiles(latencies, n=100)
    return {
        "requests": n,
        "rate_per_s": rate,
        "p50_ms": round(qs[49] * 1000, 1),
        "p99_ms": round(qs[98] * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "errors": errors,
    }


async def main() -> dict[str, Any]:
    from dtm_shared.pcodes import gazetteer

    total = _env_int("BENCH_HOUSEHOLDS", 100_000)
    batch = _env_int("BENCH_BATCH", 5000)
    concurrency = _env_int("BENCH_CONCURRENCY", 2)
    workers = _env_int("BENCH_WORKERS", 1)
    rate = float(os.environ.get("BENCH_RATE", "50"))
    latency_seconds = float(os.environ.get("BENCH_LATENCY_SECONDS", "20"))
    rng = random.Random(20261122)
    g = gazetteer()
    admin3 = [a.pcode for a in g.areas if a.level == 3]
    origins = admin3 + [a.pcode for a in g.areas if a.level == 2]
    locations = admin3

    stack = Stack()
    print(
        f"database {stack.database}, topics {stack.prefix}*, {total} households in batches of {batch}, "
        f"{concurrency} in flight, {workers} API worker(s)",
        flush=True,
    )
    try:
        await stack.up(workers)
        n_batches = total // batch
        tag = uuid.uuid4().hex[:6]
        print("generating households...", flush=True)
        households = [
            [_fix_group(make_household(rng, b * batch + i, origins, locations, tag), rng) for i in range(batch)]
            for b in range(n_batches + 1)
        ]
        individuals = sum(len(h["members"]) for hs in households[1:] for h in hs)
        bodies = [json.dumps({"households": hs}).encode() for hs in households]
        token = stack.token("BENCH")

        # Warm-up (not counted): connections, caches, first pages of the indexes.
        await _post_batches(stack.base_url, token, bodies[:1], 1)
        print("batch registration through the API...", flush=True)
        api_seconds, created = await _post_batches(stack.base_url, token, bodies[1:], concurrency)
        if created != n_batches * batch:
            raise RuntimeError(f"created {created} of {n_batches * batch}")
        api_rate = created / api_seconds
        print(
            f"  {created} households, {individuals} individuals in {api_seconds:.1f}s: {api_rate:.0f} households/s",
            flush=True,
        )

        print("raw COPY of the same rows...", flush=True)
        raw_batches = [_copy_rows(hs, 10**9 + k * batch, stack.prefix) for k, hs in enumerate(households[1:])]
        raw_seconds = await _raw_copy(stack, raw_batches, concurrency)
        raw_rate = created / raw_seconds
        print(
            f"  raw COPY in {raw_seconds:.1f}s: {raw_rate:.0f} households/s; ratio {api_rate / raw_rate:.3f}",
            flush=True,
        )

        # The same comparison, one API batch then one raw COPY batch in turn, one at a time: both
        # see the same load from whatever else runs on the machine (the phases above are minutes apart).
        rounds = _env_int("BENCH_INTERLEAVED_ROUNDS", 6)
        print(f"interleaved: {rounds} x (one API batch, one raw COPY batch)...", flush=True)
        tag2 = uuid.uuid4().hex[:6]
        api_sets = [
            [_fix_group(make_household(rng, r * batch + i, origins, locations, tag2), rng) for i in range(batch)]
            for r in range(rounds)
        ]
        raw_sets = [
            _copy_rows(
                [
                    _fix_group(make_household(rng, r * batch + i, origins, locations, tag2 + "r"), rng)
                    for i in range(batch)
                ],
                2 * 10**9 + r * batch,
                stack.prefix,
            )
            for r in range(rounds)
        ]
        api_time = raw_time = 0.0
        for r in range(rounds):
            seconds, _ = await _post_batches(
                stack.base_url, token, [json.dumps({"households": api_sets[r]}).encode()], 1
            )
            api_time += seconds
            raw_time += await _raw_copy(stack, [raw_sets[r]], 1)
        ratio_interleaved = raw_time / api_time
        print(
            f"  API {rounds * batch / api_time:.0f} households/s, "
            f"raw COPY {rounds * batch / raw_time:.0f} households/s, ratio {ratio_interleaved:.3f}",
            flush=True,
        )

        conn = await stack.connect()
        try:
            candidates = await conn.fetchval("SELECT count(*) FROM duplicate_candidates")
            unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL AND shard <> $1"
            backlog = await conn.fetchval(unpublished, UNPUBLISHED_SHARD)
            drained = time.perf_counter()
            for _ in range(600):
                if not await conn.fetchval(unpublished, UNPUBLISHED_SHARD):
                    break
                await asyncio.sleep(0.5)
            drain_seconds = time.perf_counter() - drained
            published = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
        finally:
            await conn.close()
        print(
            f"  relay: {backlog} events unpublished after the batches, all published {drain_seconds:.1f}s later",
            flush=True,
        )

        print("single-household POST latency at a fixed rate...", flush=True)
        latency = await _latency(stack, rng, origins, locations, rate, latency_seconds)
        result = {
            "households": created,
            "individuals": individuals,
            "batch_size": batch,
            "concurrency": concurrency,
            "api_workers": workers,
            "api_seconds": round(api_seconds, 2),
            "households_per_s": round(api_rate),
            "individuals_per_s": round(individuals / api_seconds),
            "raw_copy_seconds": round(raw_seconds, 2),
            "raw_copy_households_per_s": round(raw_rate),
            "ratio_to_raw_copy": round(api_rate / raw_rate, 3),
            "interleaved_api_households_per_s": round(rounds * batch / api_time),
            "interleaved_raw_copy_households_per_s": round(rounds * batch / raw_time),
            "ratio_interleaved": round(ratio_interleaved, 3),
            "duplicate_candidates_queued": candidates,
            "outbox_unpublished_after_batches": backlog,
            "outbox_drained_after_s": round(drain_seconds, 1),
            "events_published": published,
            "single_post": latency,
            "cpus": os.cpu_count(),
        }
        for k, v in result.items():
            print(f"  {k}: {v}", flush=True)
        return result
    finally:
        await stack.down()


if __name__ == "__main__":
    asyncio.run(main())
