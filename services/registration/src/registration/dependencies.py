"""The request's one commit point and the other per-request dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.web import request_session
from registration.settings import RegistrationSettings


def get_settings(request: Request) -> RegistrationSettings:
    settings: RegistrationSettings = request.app.state.settings
    return settings


def get_traceparent(request: Request) -> str | None:
    return request.headers.get("traceparent")


Session = Annotated[AsyncSession, Depends(request_session, scope="function")]
Settings = Annotated[RegistrationSettings, Depends(get_settings)]
Traceparent = Annotated[str | None, Depends(get_traceparent)]
