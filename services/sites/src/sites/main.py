"""Composition root of the sites service: everything is built in `create_app()`/lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from dtm_shared.auth import TokenVerifier
from dtm_shared.db import create_engine, create_sessionmaker
from dtm_shared.logs import configure_logging
from dtm_shared.problems import TYPE_BASE, ProblemDetail, problem_response
from dtm_shared.web import build_app
from sites.api import router
from sites.settings import SitesSettings

log = structlog.get_logger("sites")


def create_app(settings: SitesSettings | None = None) -> FastAPI:
    settings = settings or SitesSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.token_verifier = TokenVerifier(settings)
        try:
            yield
        finally:
            await engine.dispose()

    app = build_app(
        settings,
        title="dtm-platform sites",
        description="Sites, assessments, who does what where, committees and activity reports.",
        routers=[router],
        lifespan=lifespan,
        tags=[
            {"name": "sites", "description": "Displacement sites: registry, closure and reopening"},
            {"name": "admin-areas", "description": "The P-code reference (OCHA COD-AB)"},
            {"name": "assessments", "description": "Site assessments per round (population, coverage, needs, risks)"},
            {"name": "service-activities", "description": "Who does what where"},
            {"name": "committees", "description": "Regional committees that validate activity reports"},
            {"name": "activity-reports", "description": "Monthly site activity reports and their review"},
        ],
    )
    app.add_exception_handler(DBAPIError, _database_refused)
    return app


async def _database_refused(request: Request, exc: Exception) -> JSONResponse:
    """A safety net: text Postgres cannot store (a NUL byte...) that slipped past validation is bad
    input (422), not a server error; anything else stays a 500."""
    assert isinstance(exc, DBAPIError)
    bad_text = "invalid byte sequence" in str(exc.orig) or "CharacterNotInRepertoire" in type(exc.orig).__name__
    log.warning("database_error", path=request.url.path, error_class=type(exc.orig).__name__, bad_input=bad_text)
    detail = ProblemDetail(
        type=TYPE_BASE + ("validation-error" if bad_text else "internal-error"),
        title="Validation failed" if bad_text else "Internal server error",
        status=422 if bad_text else 500,
        detail="The request holds text the database cannot store." if bad_text else "An unexpected error occurred.",
        instance=request.url.path,
    )
    return problem_response(detail)
