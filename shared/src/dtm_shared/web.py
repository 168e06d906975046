"""What every service's FastAPI application shares: problem handlers, request limits, metrics,
health endpoints and request logging. Called from each service's `create_app()`."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dtm_shared.auth import SCOPES, TokenVerifier
from dtm_shared.db import create_engine, create_sessionmaker
from dtm_shared.observability import Metrics, MetricsMiddleware
from dtm_shared.problems import PROBLEM_JSON, TYPE_BASE, ProblemDetail, install_problem_handlers
from dtm_shared.settings import ServiceSettings

log = structlog.get_logger("http")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class BodyLimitMiddleware:
    """413 for bodies over the limit, whether announced by Content-Length or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isascii() and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(scope, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        body = ProblemDetail(
            type=TYPE_BASE + "payload-too-large",
            title="Payload too large",
            status=413,
            detail=f"The request body exceeds {self.max_bytes} bytes.",
            instance=scope.get("path"),
        ).model_dump_json(exclude_none=True)
        response = JSONResponse(content=None, status_code=413, media_type=PROBLEM_JSON)
        response.body = body.encode()
        response.init_headers()
        await response(scope, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


class AccessLogMiddleware:
    """One structured line per request: method, route path, status, duration. No bodies, no query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}
        request_id = str(uuid.uuid4())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            path = scope.get("path", "")
            if not path.startswith(("/health", "/metrics")):
                log.info(
                    "request",
                    method=scope.get("method"),
                    path=path,
                    status=status["code"],
                    duration_ms=round((time.perf_counter() - start) * 1000, 2),
                    request_id=request_id,
                )


async def kafka_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1", int(port)), timeout)
        except (OSError, TimeoutError, ValueError):
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True
    return False


@contextlib.asynccontextmanager
async def service_resources(
    app: FastAPI, settings: ServiceSettings, server_settings: dict[str, str] | None = None
) -> AsyncIterator[None]:
    """What every service's lifespan opens and closes: the engine bound to its schema, the
    sessionmaker behind the request's commit point, and the token verifier."""
    engine = create_engine(settings, server_settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.token_verifier = TokenVerifier(settings)
    try:
        yield
    finally:
        await engine.dispose()


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one transaction: committed when the endpoint returns, rolled back on any
    error. Each service declares it as its commit point in `dependencies.py` (scope "function",
    so a failed commit still becomes a problem answer)."""
    async with request.app.state.sessionmaker() as session, session.begin():
        yield session


def health_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health/live", operation_id="getLiveness", summary="The process is up")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        operation_id="getReadiness",
        summary="The database and Kafka are reachable",
        responses={503: {"description": "Not ready"}},
    )
    async def ready(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            engine: AsyncEngine = request.app.state.engine
            async with engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2.0)
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready
            checks["database"] = f"unavailable: {type(exc).__name__}"
        checks["kafka"] = "ok" if await kafka_reachable(settings.kafka_bootstrap) else "unavailable"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    return router


def build_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    routers: Sequence[APIRouter],
    lifespan: Lifespan,
    tags: list[dict[str, str]] | None = None,
    version: str = "1.0.0",
) -> FastAPI:
    """The FastAPI app with everything services share; `lifespan` builds the service's resources
    and must set `app.state.engine`."""
    metrics = Metrics(settings.service_name)
    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        openapi_tags=[*(tags or []), {"name": "health", "description": "Liveness and readiness"}],
        swagger_ui_init_oauth=None,
    )
    app.state.metrics = metrics
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(AccessLogMiddleware)
    app.include_router(health_router(settings))
    app.add_api_route("/metrics", metrics.endpoint, methods=["GET"], include_in_schema=False)
    for router in routers:
        app.include_router(router)
    _document_security(app)
    return app


def _document_security(app: FastAPI) -> None:
    """Describe the scopes in the OpenAPI document's security scheme."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if "HTTPBearer" in schemes:
            schemes["HTTPBearer"]["bearerFormat"] = "JWT"
            schemes["HTTPBearer"]["description"] = "JWT with `org` and `scope` claims. Scopes: " + ", ".join(
                f"`{k}` ({v})" for k, v in SCOPES.items()
            )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
