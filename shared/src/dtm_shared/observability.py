"""Prometheus metrics: request latency, outbox backlog and age, consumer lag, dead letters.

One `CollectorRegistry` per application (built in the composition root). Outbox and consumer
figures are read from the service's own tables at scrape time, so an API replica reports them
whichever process (relay, consumer) does the work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.request_latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route template",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.outbox_backlog = Gauge("outbox_backlog", "Unpublished outbox rows", registry=self.registry)
        self.outbox_age = Gauge(
            "outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished outbox row",
            registry=self.registry,
        )
        self.consumer_lag = Gauge(
            "consumer_lag_records",
            "Records behind the partition's high water mark",
            ["group", "topic", "partition"],
            registry=self.registry,
        )
        self.dead_letters = Gauge(
            "consumer_dead_letters",
            "Events sent to a dead-letter topic",
            ["group", "topic"],
            registry=self.registry,
        )

    async def refresh_from_db(self, engine: AsyncEngine) -> None:
        async with engine.connect() as conn:
            for table, refresh in (("outbox", self._outbox), ("consumer_positions", self._consumer)):
                exists = (await conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table})).scalar()
                if exists:
                    await refresh(conn)

    async def _outbox(self, conn: object) -> None:
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        row = (
            await conn.execute(
                text(
                    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(occurred_at)), 0) "
                    "FROM outbox WHERE published_at IS NULL"
                )
            )
        ).one()
        self.outbox_backlog.set(row[0])
        self.outbox_age.set(float(row[1]))

    async def _consumer(self, conn: object) -> None:
        from sqlalchemy.ext.asyncio import AsyncConnection

        assert isinstance(conn, AsyncConnection)
        rows = await conn.execute(
            text(
                "SELECT group_id, topic, partition, GREATEST(COALESCE(high_water, next_offset) - next_offset, 0) "
                "FROM consumer_positions"
            )
        )
        for g, t, p, lag in rows:
            self.consumer_lag.labels(g, t, str(p)).set(lag)
        dl = await conn.execute(text("SELECT group_id, topic, count(*) FROM dead_letters GROUP BY 1, 2"))
        for g, t, n in dl:
            self.dead_letters.labels(g, t).set(n)

    async def endpoint(self, request: Request) -> Response:
        engine: AsyncEngine | None = getattr(request.app.state, "engine", None)
        if engine is not None:
            with contextlib.suppress(DBAPIError, OSError):  # the scrape still answers
                await self.refresh_from_db(engine)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Times every request by its route template (not the raw path: no ids in labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_template(scope)
            self.metrics.request_latency.labels(scope.get("method", ""), route, str(status["code"])).observe(
                time.perf_counter() - start
            )


def _route_template(scope: Scope) -> str:
    app = scope.get("app")
    router = getattr(app, "router", None)
    for route in getattr(router, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


Endpoint = Callable[[Request], Awaitable[Response]]
