"""Thin HTTP routers of the registration service."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel

from dtm_shared.auth import Principal, require_scopes
from dtm_shared.events.common import HouseholdStatus, PopulationGroup
from dtm_shared.problems import PROBLEM_RESPONSES, PayloadTooLarge
from registration import service
from registration.dependencies import Session, Settings, Traceparent
from registration.repository import HouseholdFilter
from registration.schemas import (
    DuplicateCandidatePage,
    DuplicateCandidateRead,
    DuplicateResolution,
    DuplicateStatus,
    HouseholdBatchCreate,
    HouseholdBatchResult,
    HouseholdCreate,
    HouseholdDeactivation,
    HouseholdHistoryEntry,
    HouseholdPage,
    HouseholdRead,
    HouseholdRelocation,
    HouseholdReturn,
    HouseholdUpdate,
)

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)

Reader = Annotated[Principal, Depends(require_scopes("households:read"))]
Writer = Annotated[Principal, Depends(require_scopes("households:write"))]
Resolver = Annotated[Principal, Depends(require_scopes("duplicates:resolve"))]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry-safe POST: the same key and body return the first answer (kept 24 h at least, per client); "
        "the same key with another body is a 422.",
    ),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="The household's ETag (its version)")]

HOUSEHOLDS = "households"
DUPLICATES = "duplicates"


def _hash(request: Request, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method} {request.url.path}\n{canonical}".encode()).hexdigest()


async def _idempotent(
    session: Session,
    principal: Principal,
    key: str | None,
    request: Request,
    body: Any,
    run: Callable[[], Awaitable[tuple[int, BaseModel, dict[str, str]]]],
) -> Response:
    """Run the use case once per Idempotency-Key; a retry gets the stored answer."""
    if key is not None:
        stored = await service.idempotency_claim(session, principal, key, _hash(request, body))
        if stored is not None:
            code, content = stored
            headers = {"Idempotent-Replayed": "true"}
            etag = json.loads(content).get("version")
            if isinstance(etag, int):
                headers["ETag"] = f'"{etag}"'
            return Response(content=content, status_code=code, media_type="application/json", headers=headers)
    code, model, headers = await run()
    content = model.model_dump_json()
    if key is not None:
        await service.idempotency_store(session, principal, key, code, content)
    return Response(content=content, status_code=code, media_type="application/json", headers=headers)


def _household_headers(h: HouseholdRead) -> dict[str, str]:
    return {"ETag": f'"{h.version}"', "Location": f"/v1/households/{h.id}"}


@router.post(
    "/households",
    operation_id="registerHousehold",
    tags=[HOUSEHOLDS],
    status_code=status.HTTP_201_CREATED,
    response_model=HouseholdRead,
    responses={200: {"model": HouseholdRead, "description": "Already registered (same external_id)"}},
    summary="Register a household",
)
async def register_household(
    body: HouseholdCreate,
    request: Request,
    session: Session,
    settings: Settings,
    principal: Writer,
    traceparent: Traceparent,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def run() -> tuple[int, BaseModel, dict[str, str]]:
        household, created = await service.register_household(session, settings, principal, body, traceparent)
        return (201 if created else 200), household, _household_headers(household)

    return await _idempotent(session, principal, idempotency_key, request, body.model_dump(mode="json"), run)


@router.post(
    "/households/batch",
    operation_id="registerHouseholdsBatch",
    tags=[HOUSEHOLDS],
    response_model=HouseholdBatchResult,
    summary="Register up to 5,000 households",
    description="An answer per item: `created`, `existing` (same `external_id` from the same organisation) or "
    "`rejected` with its errors. Valid items are stored even when others are rejected. 413 above the limit.",
)
async def register_households_batch(
    body: HouseholdBatchCreate,
    request: Request,
    session: Session,
    settings: Settings,
    principal: Writer,
    traceparent: Traceparent,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    if len(body.households) > settings.batch_max_households:
        raise PayloadTooLarge(
            f"A batch holds at most {settings.batch_max_households} households; this one has {len(body.households)}."
        )

    async def run() -> tuple[int, BaseModel, dict[str, str]]:
        return 200, await service.register_batch(session, settings, principal, body.households, traceparent), {}

    return await _idempotent(session, principal, idempotency_key, request, body.households, run)


@router.get(
    "/households/{household_id}",
    operation_id="getHousehold",
    tags=[HOUSEHOLDS],
    response_model=HouseholdRead,
    summary="Read a household (personal data redacted unless allowed)",
)
async def get_household(
    household_id: uuid.UUID, session: Session, settings: Settings, principal: Reader, response: Response
) -> HouseholdRead:
    household = await service.get_household(session, settings, principal, household_id)
    response.headers["ETag"] = f'"{household.version}"'
    return household


@router.get(
    "/households",
    operation_id="listHouseholds",
    tags=[HOUSEHOLDS],
    response_model=HouseholdPage,
    summary="List households (by registration number; cursor pagination)",
)
async def list_households(
    session: Session,
    settings: Settings,
    principal: Reader,
    population_group: PopulationGroup | None = None,
    status_: Annotated[HouseholdStatus | None, Query(alias="status")] = None,
    site_id: uuid.UUID | None = None,
    admin1_pcode: Annotated[str | None, Query(max_length=12)] = None,
    admin2_pcode: Annotated[str | None, Query(max_length=12)] = None,
    admin3_pcode: Annotated[str | None, Query(max_length=12)] = None,
    registered_by_org: Annotated[str | None, Query(max_length=100)] = None,
    registered_since: date | None = None,
    registered_until: date | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> HouseholdPage:
    filters = HouseholdFilter(
        population_group=population_group,
        status=status_,
        site_id=site_id,
        admin1_pcode=admin1_pcode,
        admin2_pcode=admin2_pcode,
        admin3_pcode=admin3_pcode,
        registered_by_org=registered_by_org,
        registered_since=registered_since,
        registered_until=registered_until,
    )
    return await service.list_households(session, settings, principal, filters, cursor, limit)


@router.get(
    "/households/{household_id}/history",
    operation_id="getHouseholdHistory",
    tags=[HOUSEHOLDS],
    response_model=list[HouseholdHistoryEntry],
    summary="Every change of a household as a dated fact (non-personal snapshots)",
)
async def get_household_history(
    household_id: uuid.UUID, session: Session, principal: Reader
) -> list[HouseholdHistoryEntry]:
    rows = await service.household_history(session, household_id)
    return [
        HouseholdHistoryEntry(
            version=r.version, event_type=r.event_type, effective_date=r.effective_date, snapshot=r.snapshot
        )
        for r in rows
    ]


@router.patch(
    "/households/{household_id}",
    operation_id="updateHousehold",
    tags=[HOUSEHOLDS],
    response_model=HouseholdRead,
    responses={428: {"description": "If-Match is required"}},
    summary="Change a household (If-Match required: 412 when stale, 428 when missing)",
)
async def update_household(
    household_id: uuid.UUID,
    body: HouseholdUpdate,
    session: Session,
    settings: Settings,
    principal: Writer,
    traceparent: Traceparent,
    response: Response,
    if_match: IfMatch = None,
) -> HouseholdRead:
    household = await service.update_household(session, settings, principal, household_id, body, if_match, traceparent)
    response.headers["ETag"] = f'"{household.version}"'
    return household


@router.post(
    "/households/{household_id}/relocation",
    operation_id="relocateHousehold",
    tags=[HOUSEHOLDS],
    response_model=HouseholdRead,
    summary="Move a household to a site or a host community from a date",
)
async def relocate_household(
    household_id: uuid.UUID,
    body: HouseholdRelocation,
    request: Request,
    session: Session,
    settings: Settings,
    principal: Writer,
    traceparent: Traceparent,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def run() -> tuple[int, BaseModel, dict[str, str]]:
        h = await service.relocate_household(session, settings, principal, household_id, body, if_match, traceparent)
        return 200, h, {"ETag": f'"{h.version}"'}

    return await _idempotent(session, principal, idempotency_key, request, body.model_dump(mode="json"), run)


@router.post(
    "/households/{household_id}/return",
    operation_id="recordHouseholdReturn",
    tags=[HOUSEHOLDS],
    response_model=HouseholdRead,
    summary="An idp household returns: it becomes idp_returnee at the location",
)
async def record_household_return(
    household_id: uuid.UUID,
    body: HouseholdReturn,
    request: Request,
    session: Session,
    settings: Settings,
    principal: Writer,
    traceparent: Traceparent,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def run() -> tuple[int, BaseModel, dict[str, str]]:
        h = await service.record_return(session, settings, principal, household_id, body, if_match, traceparent)
        return 200, h, {"ETag": f'"{h.version}"'}

    return await _idempotent(session, principal, idempotency_key, request, body.model_dump(mode="json"), run)


@router.post(
    "/households/{household_id}/deactivation",
    operation_id="deactivateHousehold",
    tags=[HOUSEHOLDS],
    response_model=HouseholdRead,
    summary="Deactivate a household (departed, deceased, duplicate...)",
)
async def deactivate_household(
    household_id: uuid.UUID,
    body: HouseholdDeactivation,
    request: Request,
    session: Session,
    settings: Settings,
    principal: Writer,
    traceparent: Traceparent,
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def run() -> tuple[int, BaseModel, dict[str, str]]:
        h = await service.deactivate_household(session, settings, principal, household_id, body, if_match, traceparent)
        return 200, h, {"ETag": f'"{h.version}"'}

    return await _idempotent(session, principal, idempotency_key, request, body.model_dump(mode="json"), run)


@router.get(
    "/duplicate-candidates",
    operation_id="listDuplicateCandidates",
    tags=[DUPLICATES],
    response_model=DuplicateCandidatePage,
    summary="The queue of possible duplicates (names only for the caller's own households or with households:pii)",
)
async def list_duplicate_candidates(
    session: Session,
    settings: Settings,
    principal: Reader,
    status_: Annotated[DuplicateStatus | None, Query(alias="status")] = DuplicateStatus.pending,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DuplicateCandidatePage:
    return await service.list_duplicate_candidates(session, settings, principal, status_, cursor, limit)


@router.post(
    "/duplicate-candidates/{candidate_id}/resolution",
    operation_id="resolveDuplicateCandidate",
    tags=[DUPLICATES],
    response_model=DuplicateCandidateRead,
    summary="Decide duplicate (the newer household becomes inactive) or distinct (never raised again)",
)
async def resolve_duplicate_candidate(
    candidate_id: uuid.UUID,
    body: DuplicateResolution,
    request: Request,
    session: Session,
    settings: Settings,
    principal: Resolver,
    traceparent: Traceparent,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    async def run() -> tuple[int, BaseModel, dict[str, str]]:
        return (
            200,
            await service.resolve_duplicate_candidate(session, settings, principal, candidate_id, body, traceparent),
            {},
        )

    return await _idempotent(session, principal, idempotency_key, request, body.model_dump(mode="json"), run)
