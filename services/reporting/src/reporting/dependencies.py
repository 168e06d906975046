"""The request's one transaction and the indicator context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from reporting import repository
from reporting.service import Context
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
    gen = await repository.current_generation(session)
    return Context(session=session, sessionmaker=request.app.state.sessionmaker, settings=settings, gen=gen)


Ctx = Annotated[Context, Depends(get_context)]
