"""The request's one commit point and the other per-request dependencies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from registration.settings import RegistrationSettings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the endpoint returns, rolled back on error."""
    async with request.app.state.sessionmaker() as session, session.begin():
        yield session


def get_settings(request: Request) -> RegistrationSettings:
    settings: RegistrationSettings = request.app.state.settings
    return settings


def get_traceparent(request: Request) -> str | None:
    return request.headers.get("traceparent")


Session = Annotated[AsyncSession, Depends(get_session, scope="function")]
Settings = Annotated[RegistrationSettings, Depends(get_settings)]
Traceparent = Annotated[str | None, Depends(get_traceparent)]
