"""The request's one commit point and the other per-request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.web import request_session
from sites.settings import SitesSettings


def get_settings(request: Request) -> SitesSettings:
    settings: SitesSettings = request.app.state.settings
    return settings


Session = Annotated[AsyncSession, Depends(request_session, scope="function")]
Settings = Annotated[SitesSettings, Depends(get_settings)]
