"""Every query of the sites service."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, String, and_, func, literal, or_, tuple_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from sites.models import ActivityReport, Assessment, Committee, ReportReview, ServiceActivity, Site


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _folded(expr: Any) -> ColumnElement[str]:
    """Lower-case without accents, in the database (`extensions.unaccent`)."""
    return func.extensions.unaccent(func.lower(expr))


def _area_filter(column: Any, admin1: str | None, admin2: str | None, admin3: str | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if admin1:
        out.append(column.startswith(admin1, autoescape=True))
    if admin2:
        out.append(column.startswith(admin2, autoescape=True))
    if admin3:
        out.append(column == admin3)
    return out


@dataclass(frozen=True)
class SiteFilter:
    status: str | None = None
    site_type: str | None = None
    code: str | None = None
    admin1: str | None = None
    admin2: str | None = None
    admin3: str | None = None
    q: str | None = None


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

    async def find(self, f: SiteFilter, *, after_code: str | None, limit: int) -> Sequence[Site]:
        """Sites in `code` order (keyset pagination on the unique code)."""
        stmt = select(Site)
        conditions = _area_filter(col(Site.location_pcode), f.admin1, f.admin2, f.admin3)
        if f.status:
            conditions.append(col(Site.status) == f.status)
        if f.site_type:
            conditions.append(col(Site.site_type) == f.site_type)
        if f.code is not None:
            conditions.append(col(Site.code) == f.code)
        if f.q:
            pattern = "%" + _escape_like(f.q.strip()) + "%"
            conditions.append(
                or_(
                    _folded(col(Site.name)).like(_folded(literal(pattern, String)), escape="\\"),
                    func.lower(col(Site.code)).like(pattern.lower(), escape="\\"),
                )
            )
        if after_code is not None:
            conditions.append(col(Site.code) > after_code)
        stmt = stmt.where(and_(*conditions)).order_by(col(Site.code)).limit(limit)
        return (await self.session.exec(stmt)).all()


class AssessmentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, assessment: Assessment) -> None:
        self.session.add(assessment)

    async def get_round(self, site_id: uuid.UUID, round_number: int, *, for_update: bool = False) -> Assessment | None:
        stmt = select(Assessment).where(Assessment.site_id == site_id, Assessment.round_number == round_number)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def list_for_site(self, site_id: uuid.UUID, *, after_round: int | None, limit: int) -> Sequence[Assessment]:
        stmt = select(Assessment).where(Assessment.site_id == site_id)
        if after_round is not None:
            stmt = stmt.where(col(Assessment.round_number) > after_round)
        stmt = stmt.order_by(col(Assessment.round_number)).limit(limit)
        return (await self.session.exec(stmt)).all()


@dataclass(frozen=True)
class ActivityFilter:
    site_id: uuid.UUID | None = None
    organization: str | None = None
    sector: str | None = None
    status: str | None = None
    admin1: str | None = None
    admin2: str | None = None
    admin3: str | None = None


class ServiceActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, activity: ServiceActivity) -> None:
        self.session.add(activity)

    async def get(self, activity_id: uuid.UUID, *, for_update: bool = False) -> ServiceActivity | None:
        stmt = select(ServiceActivity).where(ServiceActivity.id == activity_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def overlapping(
        self,
        *,
        site_id: uuid.UUID,
        organization: str,
        sector: str,
        activity: str,
        start: date,
        end: date | None,
        exclude: uuid.UUID | None = None,
    ) -> ServiceActivity | None:
        """The same organisation's same activity at the same site over an overlapping period, if any."""
        far = date.max
        stmt = select(ServiceActivity).where(
            ServiceActivity.site_id == site_id,
            ServiceActivity.organization == organization,
            ServiceActivity.sector == sector,
            ServiceActivity.activity == activity,
            col(ServiceActivity.start_date) <= (end or far),
            func.coalesce(col(ServiceActivity.end_date), far) >= start,
        )
        if exclude is not None:
            stmt = stmt.where(ServiceActivity.id != exclude)
        return (await self.session.exec(stmt.limit(1))).first()

    async def find(
        self, f: ActivityFilter, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[ServiceActivity]:
        stmt = select(ServiceActivity)
        conditions: list[ColumnElement[bool]] = []
        if f.site_id:
            conditions.append(col(ServiceActivity.site_id) == f.site_id)
        if f.organization:
            conditions.append(col(ServiceActivity.organization) == f.organization)
        if f.sector:
            conditions.append(col(ServiceActivity.sector) == f.sector)
        if f.status:
            conditions.append(col(ServiceActivity.status) == f.status)
        area = _area_filter(col(Site.location_pcode), f.admin1, f.admin2, f.admin3)
        if area:
            stmt = stmt.join(Site, col(Site.id) == col(ServiceActivity.site_id))
            conditions.extend(area)
        if after is not None:
            conditions.append(tuple_(ServiceActivity.created_at, ServiceActivity.id) > tuple_(*after))
        stmt = (
            stmt.where(and_(*conditions))
            .order_by(col(ServiceActivity.created_at), col(ServiceActivity.id))
            .limit(limit)
        )
        return (await self.session.exec(stmt)).all()


class CommitteeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, committee: Committee) -> None:
        self.session.add(committee)

    async def get(self, committee_id: uuid.UUID, *, for_update: bool = False) -> Committee | None:
        stmt = select(Committee).where(Committee.id == committee_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def get_by_admin1(self, admin1: str) -> Committee | None:
        return (await self.session.exec(select(Committee).where(Committee.admin1_pcode == admin1))).first()

    async def find(self) -> Sequence[Committee]:
        return (await self.session.exec(select(Committee).order_by(col(Committee.admin1_pcode)))).all()

    async def quorums(self, admin1_codes: set[str]) -> dict[str, int]:
        if not admin1_codes:
            return {}
        rows = await self.session.exec(
            select(Committee.admin1_pcode, Committee.quorum).where(col(Committee.admin1_pcode).in_(admin1_codes))
        )
        return dict(rows.all())


@dataclass(frozen=True)
class ReportFilter:
    site_id: uuid.UUID | None = None
    period: str | None = None
    status: str | None = None
    admin1: str | None = None


class ActivityReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, report: ActivityReport | ReportReview) -> None:
        self.session.add(report)

    async def get(self, report_id: uuid.UUID, *, for_update: bool = False) -> ActivityReport | None:
        stmt = select(ActivityReport).where(ActivityReport.id == report_id)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.exec(stmt)).first()

    async def move_to_admin1(self, site_id: uuid.UUID, admin1: str) -> None:
        """Follow a site moved to another region: its reports go to that region's committee."""
        await self.session.exec(
            update(ActivityReport).where(col(ActivityReport.site_id) == site_id).values(admin1_pcode=admin1)
        )

    async def get_for_month(self, site_id: uuid.UUID, period: str) -> ActivityReport | None:
        stmt = select(ActivityReport).where(ActivityReport.site_id == site_id, ActivityReport.period == period)
        return (await self.session.exec(stmt)).first()

    async def reviews(self, report_id: uuid.UUID) -> Sequence[ReportReview]:
        stmt = (
            select(ReportReview)
            .where(ReportReview.report_id == report_id)
            .order_by(col(ReportReview.report_version), col(ReportReview.created_at))
        )
        return (await self.session.exec(stmt)).all()

    async def review_by(self, report_id: uuid.UUID, report_version: int, org: str) -> ReportReview | None:
        stmt = select(ReportReview).where(
            ReportReview.report_id == report_id,
            ReportReview.report_version == report_version,
            ReportReview.reviewer_org == org,
        )
        return (await self.session.exec(stmt)).first()

    async def find(
        self, f: ReportFilter, *, after: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> Sequence[ActivityReport]:
        """Reports in submission order (oldest first: the review queue's order)."""
        conditions: list[ColumnElement[bool]] = []
        if f.site_id:
            conditions.append(col(ActivityReport.site_id) == f.site_id)
        if f.period:
            conditions.append(col(ActivityReport.period) == f.period)
        if f.status:
            conditions.append(col(ActivityReport.status) == f.status)
        if f.admin1:
            conditions.append(col(ActivityReport.admin1_pcode) == f.admin1)
        if after is not None:
            conditions.append(tuple_(ActivityReport.submitted_at, ActivityReport.id) > tuple_(*after))
        stmt = (
            select(ActivityReport)
            .where(and_(*conditions))
            .order_by(col(ActivityReport.submitted_at), col(ActivityReport.id))
            .limit(limit)
        )
        return (await self.session.exec(stmt)).all()
