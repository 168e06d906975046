"""Thin HTTP routers of the reporting service: indicators, exports and the dashboard."""

from __future__ import annotations

import json
from datetime import date
from enum import Enum
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from dtm_shared.auth import Principal, require_scopes
from dtm_shared.problems import PROBLEM_RESPONSES
from reporting import dashboard, exports, service
from reporting.dependencies import Ctx
from reporting.schemas import (
    DisplacementReasonsResponse,
    PopulationResponse,
    ReportComplianceResponse,
    ReturnsResponse,
    ServiceGapsResponse,
    SiteIndicatorsResponse,
    SummaryResponse,
    TimeseriesResponse,
)

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)
pages = APIRouter()

Reader = Annotated[Principal, Depends(require_scopes("indicators:read"))]
AsOf = Annotated[date | None, Query(description="The date the figures describe (default: today, UTC).")]
GroupBy = Annotated[
    str | None,
    Query(
        description="Comma-separated dimensions: " + ", ".join(service.DIMENSIONS), examples=["admin1,population_group"]
    ),
]
Level = Annotated[Literal["admin1", "admin2", "admin3"], Query(description="Area level")]


def _f(description: str) -> object:
    return Query(description=description)


class PopulationFilters:
    """The population dimensions as filters (comma-separated values)."""

    def __init__(
        self,
        admin1: Annotated[str | None, _f("admin1 P-code(s)")] = None,
        admin2: Annotated[str | None, _f("admin2 P-code(s)")] = None,
        admin3: Annotated[str | None, _f("admin3 P-code(s)")] = None,
        site: Annotated[str | None, _f("site id(s)")] = None,
        population_group: Annotated[str | None, _f("idp, idp_returnee, repatriate")] = None,
        displacement_reason: Annotated[str | None, _f("displacement reason(s)")] = None,
        origin_admin1: Annotated[str | None, _f("admin1 P-code(s) of origin")] = None,
        country_of_asylum: Annotated[str | None, _f("ISO 3166-1 alpha-3 code(s)")] = None,
        sex: Annotated[str | None, _f("female, male")] = None,
        age_group: Annotated[str | None, _f("0_4, 5_11, 12_17, 18_59, 60_plus")] = None,
    ) -> None:
        self.values = service.parse_filters(
            {
                "admin1": admin1,
                "admin2": admin2,
                "admin3": admin3,
                "site": site,
                "population_group": population_group,
                "displacement_reason": displacement_reason,
                "origin_admin1": origin_admin1,
                "country_of_asylum": country_of_asylum,
                "sex": sex,
                "age_group": age_group,
            }
        )


Filters = Annotated[PopulationFilters, Depends()]
TAG: list[str | Enum] = ["indicators"]


@router.get("/indicators/summary", operation_id="getSummary", tags=TAG, response_model=SummaryResponse)
async def get_summary(ctx: Ctx, principal: Reader, as_of: AsOf = None) -> SummaryResponse:
    return await service.get_summary(ctx, service.resolve_as_of(as_of))


@router.get("/indicators/population", operation_id="getPopulation", tags=TAG, response_model=PopulationResponse)
async def get_population(
    ctx: Ctx, principal: Reader, filters: Filters, as_of: AsOf = None, group_by: GroupBy = None
) -> PopulationResponse:
    dims = service.parse_dimensions(group_by)
    return await service.get_population(ctx, service.resolve_as_of(as_of), dims, filters.values)


@router.get(
    "/indicators/displacement-reasons",
    operation_id="getDisplacementReasons",
    tags=TAG,
    response_model=DisplacementReasonsResponse,
)
async def get_displacement_reasons(
    ctx: Ctx, principal: Reader, filters: Filters, as_of: AsOf = None, level: Level = "admin2"
) -> DisplacementReasonsResponse:
    return await service.get_displacement_reasons(ctx, service.resolve_as_of(as_of), level, filters.values)


@router.get("/indicators/returns", operation_id="getReturnsAndRepatriations", tags=TAG, response_model=ReturnsResponse)
async def get_returns(ctx: Ctx, principal: Reader, as_of: AsOf = None, level: Level = "admin2") -> ReturnsResponse:
    """Returned IDPs by return area; repatriates by country of asylum and area."""
    return await service.get_returns(ctx, service.resolve_as_of(as_of), level)


@router.get("/indicators/sites", operation_id="getSiteIndicators", tags=TAG, response_model=SiteIndicatorsResponse)
async def get_site_indicators(
    ctx: Ctx, principal: Reader, as_of: AsOf = None, admin1: Annotated[str | None, Query()] = None
) -> SiteIndicatorsResponse:
    return await service.get_site_indicators(ctx, service.resolve_as_of(as_of), admin1)


@router.get("/indicators/service-gaps", operation_id="getServiceGaps", tags=TAG, response_model=ServiceGapsResponse)
async def get_service_gaps(
    ctx: Ctx, principal: Reader, as_of: AsOf = None, sector: Annotated[str | None, Query()] = None
) -> ServiceGapsResponse:
    """Gaps: open sites with people and no active activity in a sector at the date. Overlaps: two
    organisations with the same sector and activity at the same site over overlapping periods."""
    return await service.get_service_gaps(ctx, service.resolve_as_of(as_of), sector)


@router.get(
    "/indicators/population-timeseries",
    operation_id="getPopulationTimeseries",
    tags=TAG,
    response_model=TimeseriesResponse,
)
async def get_population_timeseries(
    ctx: Ctx,
    principal: Reader,
    filters: Filters,
    interval: Annotated[Literal["month", "quarter"], Query()] = "month",
    date_from: Annotated[date | None, Query(alias="from")] = None,
    date_to: Annotated[date | None, Query(alias="to")] = None,
    group_by: GroupBy = None,
) -> TimeseriesResponse:
    """The population at the end of each month or quarter between `from` and `to` (default: the
    last 12 periods); the last point is as of `to`."""
    dims = service.parse_dimensions(group_by)
    return await service.get_timeseries(ctx, interval, date_from, date_to, dims, filters.values)


@router.get(
    "/indicators/report-compliance",
    operation_id="getReportCompliance",
    tags=TAG,
    response_model=ReportComplianceResponse,
)
async def get_report_compliance(
    ctx: Ctx,
    principal: Reader,
    period_from: Annotated[str | None, Query(alias="from", description="YYYY-MM")] = None,
    period_to: Annotated[str | None, Query(alias="to", description="YYYY-MM")] = None,
) -> ReportComplianceResponse:
    """Per month and region: open sites (at the month's end) and the share with a validated report."""
    return await service.get_report_compliance(ctx, period_from, period_to)


@router.get(
    "/exports/population",
    operation_id="exportPopulation",
    tags=["exports"],
    responses={200: {"content": {"text/csv": {}, "application/json": {}}, "description": "The export"}},
)
async def export_population(
    ctx: Ctx,
    principal: Reader,
    filters: Filters,
    format: Annotated[Literal["csv", "hxl", "json"], Query(description="csv, hxl (HXL-tagged CSV) or json")] = "csv",
    as_of: AsOf = None,
    group_by: GroupBy = "admin1,admin2",
) -> Response:
    """Population by `group_by` at `as_of`. Rows under the suppression threshold (default 5
    individuals) have their counts blanked unless the caller holds `households:pii` or `admin`."""
    day = service.resolve_as_of(as_of)
    dims = service.parse_dimensions(group_by)
    rows, _ = await service.population_rows(ctx, day, dims, filters.values)
    detail = exports.has_detail_rights(principal)
    threshold = ctx.settings.suppression_threshold
    data = exports.suppress(rows, threshold, detail)
    name = f"dtm-mali-population-{day.isoformat()}"
    if format == "json":
        body = {
            "as_of": day.isoformat(),
            "freshness": (await service.freshness(ctx)).model_dump(mode="json"),
            "group_by": dims,
            "filters": filters.values,
            "suppression_threshold": None if detail else threshold,
            "items": data,
        }
        return Response(json.dumps(body), media_type="application/json")
    text = exports.to_csv(data, dims, hxl=format == "hxl", population_groups=filters.values.get("population_group"))
    suffix = "-hxl" if format == "hxl" else ""
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}{suffix}.csv"'},
    )


@pages.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard_page(ctx: Ctx, as_of: AsOf = None) -> HTMLResponse:
    return HTMLResponse(await dashboard.render(ctx, service.resolve_as_of(as_of)))
