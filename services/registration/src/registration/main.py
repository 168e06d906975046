"""Composition root of the registration service: everything is built in `create_app()`/lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dtm_shared.logs import configure_logging
from dtm_shared.web import build_app, service_resources
from registration.api import router
from registration.runtime import PausedGcForBatches, tune_gc
from registration.settings import RegistrationSettings


def create_app(settings: RegistrationSettings | None = None) -> FastAPI:
    settings = settings or RegistrationSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_resources(app, settings):
            tune_gc()
            yield

    app = build_app(
        settings,
        title="dtm-platform registration",
        description="Households and their members: registration (one or in bulk), lifecycle, duplicates. "
        "Personal data is visible only to the registering organisation and holders of `households:pii`.",
        routers=[router],
        lifespan=lifespan,
        tags=[
            {"name": "households", "description": "Displaced households and their members"},
            {"name": "duplicates", "description": "Possible duplicate registrations and their review"},
        ],
    )
    app.add_middleware(PausedGcForBatches)
    return app
