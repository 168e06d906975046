"""Composition root of the sites service: everything is built in `create_app()`/lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dtm_shared.logs import configure_logging
from dtm_shared.web import build_app, service_resources
from sites.api import router
from sites.settings import SitesSettings


def create_app(settings: SitesSettings | None = None) -> FastAPI:
    settings = settings or SitesSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_resources(app, settings):
            yield

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
    return app
