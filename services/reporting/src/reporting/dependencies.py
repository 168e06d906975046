"""The request's one transaction and the indicator context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from reporting.service import Context, open_context
from reporting.settings import ReportingSettings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request (reads only; committed when the endpoint returns)."""
    async with request.app.state.sessionmaker() as session, session.begin():
        yield session


def get_settings(request: Request) -> ReportingSettings:
    settings: ReportingSettings = request.app.state.settings
    return settings


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
Settings = Annotated[ReportingSettings, Depends(get_settings)]


async def get_context(request: Request, session: Session, settings: Settings) -> Context:
    return await open_context(session, request.app.state.sessionmaker, settings, request.app.state.result_cache)


Ctx = Annotated[Context, Depends(get_context)]
