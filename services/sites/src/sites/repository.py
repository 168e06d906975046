"""Every query of the sites service."""

from __future__ import annotations

import uuid

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from sites.models import Site


class SiteRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, site_id: uuid.UUID, *, for_update: bool = False) -> Site | None:
        stmt = select(Site).where(Site.id == site_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def get_by_code(self, code: str) -> Site | None:
        return (await self.session.exec(select(Site).where(Site.code == code))).first()

    def add(self, site: Site) -> None:
        self.session.add(site)
