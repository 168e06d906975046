"""The request's one transaction and the indicator context."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.web import request_session
from reporting.service import Context, open_context
from reporting.settings import ReportingSettings


def get_settings(request: Request) -> ReportingSettings:
    settings: ReportingSettings = request.app.state.settings
    return settings


Session = Annotated[AsyncSession, Depends(request_session, scope="function")]
Settings = Annotated[ReportingSettings, Depends(get_settings)]


async def get_context(request: Request, session: Session, settings: Settings) -> Context:
    return await open_context(session, request.app.state.sessionmaker, settings, request.app.state.result_cache)


Ctx = Annotated[Context, Depends(get_context)]
