"""Use cases of the registration service: each changes rows and stages its events in the same
transaction. Nothing here commits: the request's one commit point is in `dependencies.py`.

Personal data (names, phones, document numbers) never goes into an event, a log line or an error
message: events carry `events.registration.HouseholdSnapshotV1` (no PII), errors name the field."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlmodel.ext.asyncio.session import AsyncSession

from dtm_shared.auth import Principal
from dtm_shared.events.common import (
    HouseholdStatus,
    InactiveReason,
    PopulationGroup,
    Relationship,
    Sex,
    SpecificNeed,
)
from dtm_shared.events.registration import (
    HouseholdDeactivatedV1,
    HouseholdRegisteredV1,
    HouseholdRelocatedV1,
    HouseholdReturnedV1,
    HouseholdSnapshotV1,
    HouseholdUpdatedV1,
    MemberSnapshotV1,
)
from dtm_shared.http import check_if_match, decode_cursor, encode_cursor
from dtm_shared.messaging import outbox
from dtm_shared.messaging.outbox import OUTBOX_COLUMNS, notify_channel
from dtm_shared.pcodes import gazetteer
from dtm_shared.problems import (
    Conflict,
    Forbidden,
    NotFound,
    ValidationProblem,
)
from registration.countries import ISO3
from registration.models import DuplicateCandidate, Household, HouseholdHistory, Member
from registration.repository import HouseholdFilter, RegistrationRepository, SiteInfo
from registration.schemas import (
    BatchItemError,
    BatchItemStatus,
    DuplicateCandidatePage,
    DuplicateCandidateRead,
    DuplicateDecision,
    DuplicateHousehold,
    DuplicateResolution,
    HouseholdBatchItemResult,
    HouseholdBatchResult,
    HouseholdCreate,
    HouseholdDeactivation,
    HouseholdPage,
    HouseholdRead,
    HouseholdRelocation,
    HouseholdReturn,
    HouseholdUpdate,
    MemberCreate,
    MemberRead,
)
from registration.settings import RegistrationSettings

PII_SCOPE = "households:pii"
_PAYLOAD_AT = OUTBOX_COLUMNS.index("payload")

Loc = tuple[str | int, ...]
#: The earliest dates accepted (dates before are typing errors).
EARLIEST = date(1900, 1, 1)
EARLIEST_BIRTH = date(1880, 1, 1)


def today() -> date:
    return datetime.now(UTC).date()


def registration_number(settings: RegistrationSettings, number: int) -> str:
    return f"{settings.registration_number_prefix}{number:06d}"


def estimate_birth_date(on: date, age_years: int) -> date:
    """A date of birth giving `age_years` completed years on `on` (half a year past the birthday)."""
    year = on.year - age_years
    try:
        anniversary = on.replace(year=year)
    except ValueError:  # 29 February
        anniversary = date(year, 2, 28)
    return anniversary - timedelta(days=182)


def may_see_pii(principal: Principal, household: Household) -> bool:
    return principal.has(PII_SCOPE) or principal.org == household.registered_by_org


# -- validation --------------------------------------------------------------------------------------


@dataclass
class Errors:
    prefix: Loc
    items: list[BatchItemError] = field(default_factory=list)

    def add(self, loc: Loc, msg: str) -> None:
        self.items.append(BatchItemError(loc=[*self.prefix, *loc], msg=msg))

    def problem(self) -> ValidationProblem:
        detail = "; ".join(f"{'.'.join(map(str, e.loc))}: {e.msg}" for e in self.items[:5])
        return ValidationProblem(
            detail, errors=[{"loc": e.loc, "msg": e.msg, "type": "value_error"} for e in self.items]
        )


def resolve_location(
    site_id: uuid.UUID | None,
    location_pcode: str | None,
    sites: dict[uuid.UUID, SiteInfo],
    errors: Errors,
) -> str | None:
    """The admin3 P-code of a site (known and open) or of a host community."""
    if site_id is not None:
        site = sites.get(site_id)
        if site is None:
            errors.add(("site_id",), "unknown site")
            return None
        if site.status != "open":
            errors.add(("site_id",), "the site is closed")
            return None
        if location_pcode is not None and location_pcode != site.location_pcode:
            errors.add(("location_pcode",), f"does not match the site's P-code {site.location_pcode}")
            return None
        return site.location_pcode
    if location_pcode is None:
        errors.add(("location_pcode",), "give site_id (a site) or location_pcode (a host community)")
        return None
    if not gazetteer().is_level(location_pcode, 3):
        errors.add(("location_pcode",), f"{location_pcode!r} is not a known admin3 (commune) P-code")
        return None
    return location_pcode


def check_household(data: HouseholdCreate, errors: Errors, on: date) -> None:
    """The rules of a household that do not depend on stored data (location aside)."""
    g = gazetteer()
    if data.origin_pcode is not None and not (g.is_level(data.origin_pcode, 2) or g.is_level(data.origin_pcode, 3)):
        errors.add(("origin_pcode",), f"{data.origin_pcode!r} is not a known admin2 or admin3 P-code")
    for name in ("displacement_date", "registration_date", "return_date", "repatriation_date"):
        value = getattr(data, name)
        if value is not None and value > on:
            errors.add((name,), "is in the future")
        elif value is not None and value < EARLIEST:
            errors.add((name,), f"is before {EARLIEST.isoformat()}")
    if data.displacement_date and data.displacement_date > data.registration_date:
        errors.add(("displacement_date",), "is after the registration date")
    if data.return_date and data.displacement_date and data.return_date < data.displacement_date:
        errors.add(("return_date",), "is before the displacement date")
    if data.population_group == PopulationGroup.idp_returnee and data.return_date is None:
        errors.add(("return_date",), "is required for an idp_returnee")
    if data.population_group == PopulationGroup.repatriate:
        if data.country_of_asylum is None:
            errors.add(("country_of_asylum",), "is required for a repatriate")
        if data.repatriation_date is None:
            errors.add(("repatriation_date",), "is required for a repatriate")
    if data.country_of_asylum is not None:
        if data.country_of_asylum not in ISO3:
            errors.add(("country_of_asylum",), f"{data.country_of_asylum!r} is not an ISO 3166-1 alpha-3 code")
        elif data.country_of_asylum == "MLI":
            errors.add(("country_of_asylum",), "the country of asylum cannot be Mali")
    if data.repatriation_date and data.displacement_date and data.repatriation_date < data.displacement_date:
        errors.add(("repatriation_date",), "is before the displacement date")
    heads = sum(1 for m in data.members if m.relationship == Relationship.head)
    if heads != 1:
        errors.add(("members",), f"exactly one member must be the head (relationship 'head'); found {heads}")
    for i, m in enumerate(data.members):
        if m.date_of_birth is None and m.age_years is None:
            errors.add(("members", i, "date_of_birth"), "give date_of_birth or age_years")
        elif m.date_of_birth is not None:
            if m.date_of_birth < EARLIEST_BIRTH:
                errors.add(("members", i, "date_of_birth"), f"is before {EARLIEST_BIRTH.isoformat()}")
            elif m.date_of_birth > on:
                errors.add(("members", i, "date_of_birth"), "is in the future")
            elif m.date_of_birth > data.registration_date:
                errors.add(("members", i, "date_of_birth"), "is after the registration date")
        if (m.id_document_number is None) != (m.id_document_type is None):
            errors.add(("members", i, "id_document_number"), "id_document_type and id_document_number go together")


def completed_years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _echoable_external_id(raw: object) -> str | None:
    """A rejected batch item's `external_id`, echoed only when it is itself valid (a value that
    cannot even be encoded must not break the answer for the whole batch)."""
    ext = raw.get("external_id") if isinstance(raw, dict) else None
    if not isinstance(ext, str):
        return None
    try:
        ext.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return ext if 0 < len(ext) <= 100 and ext.isprintable() else None


def birth_date(m: MemberCreate, registration_date: date) -> tuple[date, bool]:
    if m.date_of_birth is not None:
        return m.date_of_birth, False
    assert m.age_years is not None
    return estimate_birth_date(registration_date, m.age_years), True


def pydantic_errors(exc: ValidationError, errors: Errors) -> None:
    for e in exc.errors(include_input=False, include_url=False):
        errors.add(tuple(e["loc"]), str(e["msg"]))


# -- snapshots and reads -------------------------------------------------------------------------


def _admin(location_pcode: str) -> tuple[str, str]:
    ancestors = gazetteer().ancestors(location_pcode)
    a1 = ancestors[1].pcode if 1 in ancestors else location_pcode[:4]
    a2 = ancestors[2].pcode if 2 in ancestors else location_pcode[:6]
    return a1, a2


def snapshot(
    settings: RegistrationSettings,
    h: AnyHousehold,
    members: Sequence[AnyMember],
    event: type[HouseholdSnapshotV1],
    effective: date,
) -> HouseholdSnapshotV1:
    a1, a2 = _admin(h.location_pcode)
    return event(
        aggregate_id=h.id,
        version=h.version,
        effective_date=effective,
        registration_number=registration_number(settings, h.number),
        population_group=h.population_group,
        status=h.status,
        inactive_reason=h.inactive_reason,
        inactive_date=h.inactive_date,
        site_id=h.site_id,
        location_pcode=h.location_pcode,
        admin1_pcode=a1,
        admin2_pcode=a2,
        origin_pcode=h.origin_pcode,
        displacement_reason=h.displacement_reason,
        displacement_date=h.displacement_date,
        registration_date=h.registration_date,
        return_date=h.return_date,
        country_of_asylum=h.country_of_asylum,
        repatriation_date=h.repatriation_date,
        registered_by_org=h.registered_by_org,
        members=[
            MemberSnapshotV1(
                member_id=m.id,
                sex=m.sex,
                date_of_birth=m.date_of_birth,
                date_of_birth_estimated=m.date_of_birth_estimated,
                relationship=m.relationship,
                specific_needs=m.specific_needs,
            )
            for m in members
        ],
    )


_M = TypeVar("_M", bound=BaseModel)


def _construct(cls: type[_M], values: dict[str, Any]) -> _M:
    """`cls.model_construct(**values)` without its per-field bookkeeping: `values` holds every
    field, already of its declared type (what model_construct would store)."""
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def new_household_snapshot(settings: RegistrationSettings, n: _New) -> HouseholdRegisteredV1:
    """`snapshot()` of a new household, for the bulk path: built from values already validated
    (`HouseholdCreate`), without validating them again (tests check it parses as the contract)."""
    h, data = n.household, n.data
    a1, a2 = _admin(h.location_pcode)
    return _construct(
        HouseholdRegisteredV1,
        {
            "aggregate_id": h.id,
            "version": 1,
            "effective_date": data.registration_date,
            "registration_number": registration_number(settings, h.number),
            "population_group": data.population_group,
            "status": HouseholdStatus.active,
            "inactive_reason": None,
            "site_id": h.site_id,
            "location_pcode": h.location_pcode,
            "origin_pcode": h.origin_pcode,
            "displacement_reason": data.displacement_reason,
            "displacement_date": h.displacement_date,
            "registration_date": h.registration_date,
            "return_date": h.return_date,
            "country_of_asylum": h.country_of_asylum,
            "repatriation_date": h.repatriation_date,
            "registered_by_org": h.registered_by_org,
            "members": [
                _construct(
                    MemberSnapshotV1,
                    {
                        "member_id": m.id,
                        "sex": given.sex,
                        "date_of_birth": m.date_of_birth,
                        "date_of_birth_estimated": m.date_of_birth_estimated,
                        "relationship": given.relationship,
                        "specific_needs": list(given.specific_needs),
                    },
                )
                for m, given in zip(n.members, data.members, strict=True)
            ],
            "admin1_pcode": a1,
            "admin2_pcode": a2,
            "inactive_date": None,
        },
    )


def to_read(
    settings: RegistrationSettings, h: Household, members: Sequence[Member], principal: Principal
) -> HouseholdRead:
    pii = may_see_pii(principal, h)
    a1, a2 = _admin(h.location_pcode)
    return HouseholdRead(
        id=h.id,
        registration_number=registration_number(settings, h.number),
        external_id=h.external_id,
        registered_by_org=h.registered_by_org,
        population_group=h.population_group,
        status=h.status,
        inactive_reason=h.inactive_reason,
        inactive_date=h.inactive_date,
        site_id=h.site_id,
        location_pcode=h.location_pcode,
        admin1_pcode=a1,
        admin2_pcode=a2,
        admin3_pcode=h.location_pcode,
        origin_pcode=h.origin_pcode,
        displacement_reason=h.displacement_reason,
        displacement_date=h.displacement_date,
        registration_date=h.registration_date,
        return_date=h.return_date,
        country_of_asylum=h.country_of_asylum,
        repatriation_date=h.repatriation_date,
        version=h.version,
        pii_redacted=not pii,
        members=[
            MemberRead(
                id=m.id,
                given_name=m.given_name if pii else None,
                family_name=m.family_name if pii else None,
                sex=m.sex,
                date_of_birth=m.date_of_birth,
                date_of_birth_estimated=m.date_of_birth_estimated,
                relationship=m.relationship,
                specific_needs=m.specific_needs,
                phone=m.phone if pii else None,
                id_document_type=m.id_document_type,
                id_document_number=m.id_document_number if pii else None,
            )
            for m in members
        ],
    )


# -- registration (one or many: the same bulk path) -------------------------------------------------


@dataclass(slots=True)
class MemberState:
    """A new member (the bulk path builds these, not ORM instances: much cheaper)."""

    id: uuid.UUID
    household_id: uuid.UUID
    position: int
    given_name: str
    family_name: str
    sex: str
    date_of_birth: date
    date_of_birth_estimated: bool
    relationship: str
    specific_needs: list[str]
    phone: str | None
    id_document_type: str | None
    id_document_number: str | None


@dataclass(slots=True)
class HouseholdState:
    """A new household, as `Household` has it (without the ORM)."""

    id: uuid.UUID
    number: int
    external_id: str | None
    registered_by_org: str
    population_group: str
    status: str
    inactive_reason: str | None
    inactive_date: date | None
    site_id: uuid.UUID | None
    location_pcode: str
    origin_pcode: str | None
    displacement_reason: str
    displacement_date: date | None
    registration_date: date
    return_date: date | None
    country_of_asylum: str | None
    repatriation_date: date | None
    head_birth_date: date
    version: int


AnyHousehold = Household | HouseholdState
AnyMember = Member | MemberState


@dataclass(slots=True)
class _New:
    index: int
    data: HouseholdCreate
    household: HouseholdState
    members: list[MemberState]


async def register_households(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    items: Sequence[HouseholdCreate | Any],
    *,
    loc_prefix: Loc = ("body", "households"),
    indexed: bool = True,
    traceparent: str | None = None,
) -> list[HouseholdBatchItemResult]:
    """Validate and register households; an answer per item (`created`, `existing`, `rejected`).
    Valid items are stored even when others are rejected."""
    on = today()
    repo = RegistrationRepository(session)
    results: list[HouseholdBatchItemResult | None] = [None] * len(items)
    parsed: list[tuple[int, HouseholdCreate, Errors]] = []
    for i, raw in enumerate(items):
        errors = Errors((*loc_prefix, i) if indexed else loc_prefix)
        if isinstance(raw, HouseholdCreate):
            data = raw
        else:
            try:
                data = HouseholdCreate.model_validate(raw)
            except ValidationError as exc:
                pydantic_errors(exc, errors)
                results[i] = HouseholdBatchItemResult(
                    index=i,
                    status=BatchItemStatus.rejected,
                    external_id=_echoable_external_id(raw),
                    errors=errors.items,
                )
                continue
        parsed.append((i, data, errors))

    sites = await repo.sites([d.site_id for _, d, _ in parsed if d.site_id is not None])
    valid: list[tuple[int, HouseholdCreate, str]] = []
    for i, data, errors in parsed:
        location = resolve_location(data.site_id, data.location_pcode, sites, errors)
        check_household(data, errors, on)
        if errors.items or location is None:
            results[i] = HouseholdBatchItemResult(
                index=i, status=BatchItemStatus.rejected, external_id=data.external_id, errors=errors.items
            )
        else:
            valid.append((i, data, location))

    # Idempotent intake: (registered_by_org, external_id) already stored, or earlier in this batch.
    existing = await repo.existing_by_external_id(
        principal.org, [d.external_id for _, d, _ in valid if d.external_id is not None]
    )
    first_in_batch: dict[str, int] = {}
    new: list[_New] = []
    repeats: list[tuple[int, str]] = []
    for i, data, location in valid:
        ext = data.external_id
        if ext is not None and ext in existing:
            hid, number = existing[ext]
            results[i] = HouseholdBatchItemResult(
                index=i,
                status=BatchItemStatus.existing,
                external_id=ext,
                household_id=hid,
                registration_number=registration_number(settings, number),
            )
            continue
        if ext is not None:
            if ext in first_in_batch:
                repeats.append((i, ext))
                continue
            first_in_batch[ext] = i
        new.append(_build(principal, data, location, i))

    numbers = await repo.insert_households([_household_row(n) for n in new]) if new else {}
    raced = [n for n in new if n.household.id not in numbers]
    if raced:  # a concurrent request stored the same external ids first
        again = await repo.existing_by_external_id(principal.org, [n.data.external_id or "" for n in raced])
        for n in raced:
            hid, number = again[n.data.external_id or ""]
            results[n.index] = HouseholdBatchItemResult(
                index=n.index,
                status=BatchItemStatus.existing,
                external_id=n.data.external_id,
                household_id=hid,
                registration_number=registration_number(settings, number),
            )
    created = [n for n in new if n.household.id in numbers]
    if created:
        member_rows: list[tuple[Any, ...]] = []
        payloads: list[HouseholdSnapshotV1] = []
        for n in created:
            n.household.number = numbers[n.household.id]
            member_rows.extend(_member_row(m) for m in n.members)
            payloads.append(new_household_snapshot(settings, n))
        outbox_rows = outbox.rows_for_copy(settings, payloads, traceparent)
        history_rows = [
            (p.aggregate_id, p.version, p.event_type, p.effective_date, row[_PAYLOAD_AT])
            for p, row in zip(payloads, outbox_rows, strict=True)
        ]
        await repo.copy_members(member_rows)
        await repo.copy_history(history_rows)
        await repo.copy_outbox(outbox_rows, notify_channel(settings.schema_name))
        await repo.find_duplicates(
            [n.household.id for n in created], settings.duplicate_birth_window_days, settings.duplicate_name_similarity
        )
        for n in created:
            results[n.index] = HouseholdBatchItemResult.model_construct(
                index=n.index,
                status=BatchItemStatus.created,
                external_id=n.data.external_id,
                household_id=n.household.id,
                registration_number=registration_number(settings, n.household.number),
                errors=[],
            )
    for i, ext in repeats:
        first = results[first_in_batch[ext]]
        assert first is not None
        results[i] = HouseholdBatchItemResult(
            index=i,
            status=BatchItemStatus.existing if first.household_id else BatchItemStatus.rejected,
            external_id=ext,
            household_id=first.household_id,
            registration_number=first.registration_number,
        )
    return [r for r in results if r is not None]


def _build(principal: Principal, data: HouseholdCreate, location: str, index: int) -> _New:
    hid = uuid.uuid4()
    members = []
    for pos, m in enumerate(data.members):
        dob, estimated = birth_date(m, data.registration_date)
        members.append(
            MemberState(
                uuid.uuid4(),
                hid,
                pos,
                m.given_name,
                m.family_name,
                m.sex.value,
                dob,
                estimated,
                m.relationship.value,
                [n.value for n in m.specific_needs],
                m.phone,
                m.id_document_type,
                m.id_document_number,
            )
        )
    household = HouseholdState(
        id=hid,
        number=0,
        external_id=data.external_id,
        registered_by_org=principal.org,
        population_group=data.population_group.value,
        status=HouseholdStatus.active.value,
        inactive_reason=None,
        inactive_date=None,
        site_id=data.site_id,
        location_pcode=location,
        origin_pcode=data.origin_pcode,
        displacement_reason=data.displacement_reason.value,
        displacement_date=data.displacement_date,
        registration_date=data.registration_date,
        return_date=data.return_date,
        country_of_asylum=data.country_of_asylum,
        repatriation_date=data.repatriation_date,
        head_birth_date=next(m.date_of_birth for m in members if m.relationship == Relationship.head),
        version=1,
    )
    return _New(index, data, household, members)


def _head_name(members: Sequence[AnyMember]) -> str:
    head = next(m for m in members if m.relationship == Relationship.head)
    return f"{head.given_name} {head.family_name}"


def _household_row(n: _New) -> tuple[Any, ...]:
    h = n.household
    return (
        h.id,
        h.external_id,
        h.registered_by_org,
        str(h.population_group),
        h.site_id,
        h.location_pcode,
        h.origin_pcode,
        str(h.displacement_reason),
        h.displacement_date,
        h.registration_date,
        h.return_date,
        h.country_of_asylum,
        h.repatriation_date,
        _head_name(n.members),
        h.head_birth_date,
    )


def _member_row(m: AnyMember) -> tuple[Any, ...]:
    return (
        m.id,
        m.household_id,
        m.position,
        m.given_name,
        m.family_name,
        str(m.sex),
        m.date_of_birth,
        m.date_of_birth_estimated,
        str(m.relationship),
        [str(s) for s in m.specific_needs],
        m.phone,
        m.id_document_type,
        m.id_document_number,
    )


async def register_household(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    data: HouseholdCreate,
    traceparent: str | None = None,
) -> tuple[HouseholdRead, bool]:
    """Register one household; returns it and whether it was created (False: the same
    `external_id` was already registered by the organisation)."""
    [result] = await register_households(
        session, settings, principal, [data], loc_prefix=("body",), indexed=False, traceparent=traceparent
    )
    if result.status == BatchItemStatus.rejected:
        errors = Errors(())
        errors.items = result.errors
        raise errors.problem()
    assert result.household_id is not None
    return await get_household(session, settings, principal, result.household_id), (
        result.status == BatchItemStatus.created
    )


async def register_batch(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    items: Sequence[Any],
    traceparent: str | None = None,
) -> HouseholdBatchResult:
    results = await register_households(session, settings, principal, items, traceparent=traceparent)
    counts = {s: 0 for s in BatchItemStatus}
    for r in results:
        counts[r.status] += 1
    return HouseholdBatchResult(
        created=counts[BatchItemStatus.created],
        existing=counts[BatchItemStatus.existing],
        rejected=counts[BatchItemStatus.rejected],
        items=results,
    )


# -- reads ---------------------------------------------------------------------------------------------


async def _load(session: AsyncSession, household_id: uuid.UUID, *, for_update: bool = False) -> Household:
    h = await RegistrationRepository(session).get(household_id, for_update=for_update)
    if h is None:
        raise NotFound(f"No household {household_id}.")
    return h


async def get_household(
    session: AsyncSession, settings: RegistrationSettings, principal: Principal, household_id: uuid.UUID
) -> HouseholdRead:
    repo = RegistrationRepository(session)
    h = await _load(session, household_id)
    members = (await repo.members_of([h.id]))[h.id]
    return to_read(settings, h, members, principal)


async def list_households(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    filters: HouseholdFilter,
    cursor: str | None,
    limit: int,
) -> HouseholdPage:
    after = None
    if cursor:
        (after,) = decode_cursor(cursor, (int,))  # type: ignore[misc]
    repo = RegistrationRepository(session)
    rows = await repo.list_households(filters, after, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    members = await repo.members_of([h.id for h in page])
    return HouseholdPage(
        items=[to_read(settings, h, members[h.id], principal) for h in page],
        next_cursor=encode_cursor([page[-1].number]) if more and page else None,
    )


async def household_history(session: AsyncSession, household_id: uuid.UUID) -> list[HouseholdHistory]:
    await _load(session, household_id)
    return await RegistrationRepository(session).history(household_id)


# -- changes -------------------------------------------------------------------------------------------


def check_version(h: Household, if_match: str | None, *, required: bool) -> None:
    check_if_match(if_match, h.version, required=required)


async def _apply_change(
    session: AsyncSession,
    settings: RegistrationSettings,
    h: Household,
    members: list[Member],
    event: type[HouseholdSnapshotV1],
    effective: date,
    traceparent: str | None,
) -> None:
    h.version += 1
    h.updated_at = datetime.now(UTC)
    session.add(h)
    await session.flush()
    payload = snapshot(settings, h, members, event, effective)
    RegistrationRepository(session).add_history(
        HouseholdHistory(
            household_id=h.id,
            version=h.version,
            event_type=event.event_type,
            effective_date=effective,
            snapshot=payload.model_dump(mode="json"),
        )
    )
    await outbox.stage(session, settings, [payload], traceparent=traceparent)
    await session.flush()


def check_may_change(h: Household, principal: Principal) -> None:
    """Only the registering organisation, or a holder of households:pii (the coordination), may
    change a household; other partners read it."""
    if h.registered_by_org != principal.org and not principal.has(PII_SCOPE):
        raise Forbidden("Only the registering organisation or a holder of households:pii may change this household.")


async def _active(session: AsyncSession, household_id: uuid.UUID, principal: Principal) -> Household:
    h = await _load(session, household_id, for_update=True)
    if h.status != HouseholdStatus.active:
        raise Conflict("The household is inactive; it cannot change any more.")
    check_may_change(h, principal)
    return h


async def update_household(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    household_id: uuid.UUID,
    patch: HouseholdUpdate,
    if_match: str | None,
    traceparent: str | None = None,
) -> HouseholdRead:
    h = await _load(session, household_id, for_update=True)
    check_version(h, if_match, required=True)
    if h.status != HouseholdStatus.active:
        raise Conflict("The household is inactive; it cannot change any more.")
    check_may_change(h, principal)
    repo = RegistrationRepository(session)
    current = (await repo.members_of([h.id]))[h.id]
    changes = patch.model_dump(exclude_unset=True, exclude={"members"})
    nulls = [f for f in ("displacement_reason", "registration_date") if f in changes and changes[f] is None]
    if nulls:
        raise ValidationProblem(
            "; ".join(f"{f}: may not be null" for f in nulls),
            errors=[{"loc": ["body", f], "msg": "may not be null"} for f in nulls],
        )
    merged = HouseholdCreate.model_construct(
        external_id=changes.get("external_id", h.external_id),
        population_group=PopulationGroup(h.population_group),
        site_id=h.site_id,
        location_pcode=h.location_pcode,
        origin_pcode=changes.get("origin_pcode", h.origin_pcode),
        displacement_reason=changes.get("displacement_reason", h.displacement_reason),
        displacement_date=changes.get("displacement_date", h.displacement_date),
        registration_date=changes.get("registration_date") or h.registration_date,
        return_date=changes.get("return_date", h.return_date),
        country_of_asylum=changes.get("country_of_asylum", h.country_of_asylum),
        repatriation_date=changes.get("repatriation_date", h.repatriation_date),
        members=list(patch.members)
        if patch.members is not None
        else [
            MemberCreate.model_construct(
                given_name=m.given_name,
                family_name=m.family_name,
                sex=Sex(m.sex),
                date_of_birth=m.date_of_birth,
                age_years=None,
                relationship=Relationship(m.relationship),
                specific_needs=[SpecificNeed(n) for n in m.specific_needs],
                phone=m.phone,
                id_document_type=m.id_document_type,
                id_document_number=m.id_document_number,
            )
            for m in current
        ],
    )
    errors = Errors(("body",))
    check_household(merged, errors, today())
    known = {m.id: m for m in current}
    if patch.members is not None:
        for i, m in enumerate(patch.members):
            if m.id is not None and m.id not in known:
                errors.add(("members", i, "id"), "is not a member of this household")
        if len({m.id for m in patch.members if m.id is not None}) != sum(1 for m in patch.members if m.id):
            errors.add(("members",), "a member id appears twice")
    if errors.items:
        raise errors.problem()
    for name, value in changes.items():
        setattr(h, name, value)
    members = current
    if patch.members is not None:
        members = []
        for pos, m in enumerate(patch.members):
            dob, estimated = birth_date(m, h.registration_date)
            previous = known.get(m.id) if m.id else None
            if (
                m.date_of_birth is None
                and previous is not None
                and m.age_years == completed_years(previous.date_of_birth, h.registration_date)
            ):
                # An age alone keeps a known date of birth when it gives the same age.
                dob, estimated = previous.date_of_birth, previous.date_of_birth_estimated
            members.append(
                Member(
                    id=m.id or uuid.uuid4(),
                    household_id=h.id,
                    position=pos,
                    given_name=m.given_name,
                    family_name=m.family_name,
                    sex=m.sex,
                    date_of_birth=dob,
                    date_of_birth_estimated=estimated,
                    relationship=m.relationship,
                    specific_needs=list(m.specific_needs),
                    phone=m.phone,
                    id_document_type=m.id_document_type,
                    id_document_number=m.id_document_number,
                )
            )
        await session.flush()
        await repo.replace_members(h.id, [_member_row(m) for m in members])
        head = next(m for m in members if m.relationship == Relationship.head)
        await repo.refresh_head(h.id, _head_name(members), head.date_of_birth)
        h.head_birth_date = head.date_of_birth
    await _apply_change(session, settings, h, members, HouseholdUpdatedV1, today(), traceparent)
    if patch.members is not None:
        await repo.find_duplicates([h.id], settings.duplicate_birth_window_days, settings.duplicate_name_similarity)
    return to_read(settings, h, members, principal)


def _check_effective(h: Household, effective: date, name: str) -> None:
    if effective < EARLIEST:
        raise ValidationProblem.field(["body", name], f"is before {EARLIEST.isoformat()}")
    if effective > today():
        raise ValidationProblem.field(["body", name], "is in the future")
    if effective < h.registration_date:
        raise ValidationProblem.field(["body", name], "is before the registration date")


async def relocate_household(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    household_id: uuid.UUID,
    body: HouseholdRelocation,
    if_match: str | None,
    traceparent: str | None = None,
) -> HouseholdRead:
    h = await _active(session, household_id, principal)
    check_version(h, if_match, required=False)
    repo = RegistrationRepository(session)
    errors = Errors(("body",))
    location = resolve_location(
        body.site_id, body.location_pcode, await repo.sites([body.site_id] if body.site_id else []), errors
    )
    if errors.items or location is None:
        raise errors.problem()
    _check_effective(h, body.effective_date, "effective_date")
    if location == h.location_pcode and body.site_id == h.site_id:
        raise ValidationProblem.field(
            ["body", "site_id" if body.site_id else "location_pcode"], "is the current location"
        )
    h.site_id, h.location_pcode = body.site_id, location
    members = (await repo.members_of([h.id]))[h.id]
    await _apply_change(session, settings, h, members, HouseholdRelocatedV1, body.effective_date, traceparent)
    return to_read(settings, h, members, principal)


async def record_return(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    household_id: uuid.UUID,
    body: HouseholdReturn,
    if_match: str | None,
    traceparent: str | None = None,
) -> HouseholdRead:
    h = await _active(session, household_id, principal)
    check_version(h, if_match, required=False)
    if h.population_group != PopulationGroup.idp:
        raise Conflict(f"Only an idp household can return; this one is {h.population_group}.")
    repo = RegistrationRepository(session)
    errors = Errors(("body",))
    location = resolve_location(
        body.site_id, body.location_pcode, await repo.sites([body.site_id] if body.site_id else []), errors
    )
    if errors.items or location is None:
        raise errors.problem()
    _check_effective(h, body.return_date, "return_date")
    if h.displacement_date and body.return_date < h.displacement_date:
        raise ValidationProblem.field(["body", "return_date"], "is before the displacement date")
    h.site_id, h.location_pcode = body.site_id, location
    h.population_group = PopulationGroup.idp_returnee
    h.return_date = body.return_date
    members = (await repo.members_of([h.id]))[h.id]
    await _apply_change(session, settings, h, members, HouseholdReturnedV1, body.return_date, traceparent)
    return to_read(settings, h, members, principal)


async def deactivate_household(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    household_id: uuid.UUID,
    body: HouseholdDeactivation,
    if_match: str | None,
    traceparent: str | None = None,
) -> HouseholdRead:
    h = await _active(session, household_id, principal)
    check_version(h, if_match, required=False)
    _check_effective(h, body.effective_date, "effective_date")
    await _deactivate(session, settings, h, body.reason, body.effective_date, traceparent)
    members = (await RegistrationRepository(session).members_of([h.id]))[h.id]
    return to_read(settings, h, members, principal)


async def _deactivate(
    session: AsyncSession,
    settings: RegistrationSettings,
    h: Household,
    reason: InactiveReason,
    effective: date,
    traceparent: str | None,
) -> None:
    h.status = HouseholdStatus.inactive
    h.inactive_reason = reason
    h.inactive_date = effective
    members = (await RegistrationRepository(session).members_of([h.id]))[h.id]
    await _apply_change(session, settings, h, members, HouseholdDeactivatedV1, effective, traceparent)


# -- duplicates ----------------------------------------------------------------------------------------


def _side(
    settings: RegistrationSettings, h: Household, head: tuple[Member, int], principal: Principal
) -> DuplicateHousehold:
    member, count = head
    return DuplicateHousehold(
        id=h.id,
        registration_number=registration_number(settings, h.number),
        registered_by_org=h.registered_by_org,
        population_group=h.population_group,
        status=h.status,
        location_pcode=h.location_pcode,
        origin_pcode=h.origin_pcode,
        registration_date=h.registration_date,
        members=count,
        head_sex=member.sex,
        head_date_of_birth=member.date_of_birth,
        head_name=f"{member.given_name} {member.family_name}" if may_see_pii(principal, h) else None,
    )


async def _candidate_reads(
    session: AsyncSession, settings: RegistrationSettings, principal: Principal, rows: Sequence[DuplicateCandidate]
) -> list[DuplicateCandidateRead]:
    repo = RegistrationRepository(session)
    ids = [i for c in rows for i in (c.household_a, c.household_b)]
    households = await repo.households(ids)
    heads = await repo.heads(ids)
    return [
        DuplicateCandidateRead(
            id=c.id,
            status=c.status,
            reasons=c.reasons,
            name_similarity=round(c.name_similarity, 3) if c.name_similarity is not None else None,
            older=_side(settings, households[c.household_a], heads[c.household_a], principal),
            newer=_side(settings, households[c.household_b], heads[c.household_b], principal),
            resolved_by_org=c.resolved_by_org,
        )
        for c in rows
    ]


async def list_duplicate_candidates(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    status: str | None,
    cursor: str | None,
    limit: int,
) -> DuplicateCandidatePage:
    after = None
    if cursor:
        ts, cid = decode_cursor(cursor, (str, str))  # type: ignore[misc]
        try:
            after = (datetime.fromisoformat(ts), uuid.UUID(cid))
        except ValueError as exc:
            raise ValidationProblem.field(["query", "cursor"], "is not a cursor returned by this API") from exc
    rows = await RegistrationRepository(session).candidates(status, after, limit + 1)
    page, more = rows[:limit], len(rows) > limit
    return DuplicateCandidatePage(
        items=await _candidate_reads(session, settings, principal, page),
        next_cursor=encode_cursor([page[-1].created_at.isoformat() if page[-1].created_at else "", str(page[-1].id)])
        if more and page
        else None,
    )


async def resolve_duplicate_candidate(
    session: AsyncSession,
    settings: RegistrationSettings,
    principal: Principal,
    candidate_id: uuid.UUID,
    body: DuplicateResolution,
    traceparent: str | None = None,
) -> DuplicateCandidateRead:
    repo = RegistrationRepository(session)
    c = await repo.candidate(candidate_id, for_update=True)
    if c is None:
        raise NotFound(f"No duplicate candidate {candidate_id}.")
    if c.status != "pending":
        raise Conflict(f"The candidate is already resolved ({c.status}).")
    if body.decision == DuplicateDecision.duplicate:
        newer = await _load(session, c.household_b, for_update=True)
        if newer.status == HouseholdStatus.active:
            effective = body.effective_date or today()
            _check_effective(newer, effective, "effective_date")
            await _deactivate(session, settings, newer, InactiveReason.duplicate, effective, traceparent)
    elif body.effective_date is not None:
        raise ValidationProblem.field(["body", "effective_date"], "only goes with the decision 'duplicate'")
    c.status = body.decision.value
    c.resolved_by_org = principal.org
    c.resolved_by = principal.sub
    c.resolved_at = datetime.now(UTC)
    session.add(c)
    await session.flush()
    [read] = await _candidate_reads(session, settings, principal, [c])
    return read


# -- idempotency keys ----------------------------------------------------------------------------------


async def idempotency_claim(
    session: AsyncSession, principal: Principal, key: str, request_hash: str
) -> tuple[int, str] | None:
    """None when this request runs; else the first answer (status, JSON body) for the key.
    The same key with another body is a 422."""
    if not 1 <= len(key) <= 200:
        raise ValidationProblem.field(["header", "Idempotency-Key"], "must be 1 to 200 characters")
    stored_hash, status, body = await RegistrationRepository(session).claim_idempotency_key(
        f"{principal.org}/{principal.sub}", key, request_hash
    )
    if stored_hash != request_hash:
        raise ValidationProblem.field(
            ["header", "Idempotency-Key"], "was already used with a different request body", "idempotency_key_reused"
        )
    if status is None:
        return None
    return status, body


async def idempotency_store(session: AsyncSession, principal: Principal, key: str, status: int, body: str) -> None:
    await RegistrationRepository(session).store_idempotent_response(
        f"{principal.org}/{principal.sub}", key, status, body
    )
