"""Composition root of the reporting service: everything is built in `create_app()`/lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from dtm_shared.logs import configure_logging
from dtm_shared.web import build_app, service_resources
from reporting.api import pages, router
from reporting.service import ResultCache
from reporting.settings import ReportingSettings

#: Indicator queries are short aggregates over small partitions, where parallel workers and JIT
#: compilation only add latency.
READ_PATH_SETTINGS = {"max_parallel_workers_per_gather": "0", "jit": "off"}


def create_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_resources(app, settings, READ_PATH_SETTINGS):
            app.state.result_cache = ResultCache(settings.result_cache_size) if settings.result_cache_size else None
            yield

    return build_app(
        settings,
        title="dtm-platform reporting",
        description="Indicators at any date, disaggregated by sex and age; gaps and overlaps; exports; dashboard. "
        "Built only from the events of registration and sites; holds no personal data.",
        routers=[router, pages],
        lifespan=lifespan,
        tags=[
            {"name": "indicators", "description": "Indicators (scope indicators:read)"},
            {"name": "exports", "description": "CSV, HXL and JSON exports (scope indicators:read)"},
        ],
    )
