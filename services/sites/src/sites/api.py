"""Thin HTTP routers of the sites service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from dtm_shared.auth import Principal, require_scopes
from dtm_shared.problems import PROBLEM_RESPONSES
from sites import service
from sites.dependencies import Session, Settings
from sites.schemas import SiteCreate, SiteRead

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES)

Reader = Annotated[Principal, Depends(require_scopes("sites:read"))]
Writer = Annotated[Principal, Depends(require_scopes("sites:write"))]


@router.post(
    "/sites",
    operation_id="createSite",
    tags=["sites"],
    status_code=status.HTTP_201_CREATED,
    response_model=SiteRead,
)
async def create_site(
    body: SiteCreate, session: Session, settings: Settings, principal: Writer, response: Response
) -> SiteRead:
    site = await service.create_site(session, settings, principal, body)
    response.headers["ETag"] = f'"{site.version}"'
    response.headers["Location"] = f"/v1/sites/{site.id}"
    return service.to_read(site)


@router.get("/sites/{site_id}", operation_id="getSite", tags=["sites"], response_model=SiteRead)
async def get_site(site_id: uuid.UUID, session: Session, principal: Reader, response: Response) -> SiteRead:
    site = await service.get_site(session, site_id)
    response.headers["ETag"] = f'"{site.version}"'
    return service.to_read(site)
