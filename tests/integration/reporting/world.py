"""A deterministic fixture world (households, sites, activities, reports) as shared event payloads,
and the expected figures computed independently of the service (plain Python, from the same data)."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dtm_shared.events import registration as reg
from dtm_shared.events import sites as ev
from dtm_shared.pcodes import gazetteer

BRACKETS = ("0_4", "5_11", "12_17", "18_59", "60_plus")
COUNT_KEYS = ("households", "individuals", "female", "male") + tuple(
    f"{s}_{b}" for s in ("female", "male") for b in BRACKETS
)


def age(dob: date, at: date) -> int:
    return at.year - dob.year - ((at.month, at.day) < (dob.month, dob.day))


def bracket(dob: date, at: date) -> str:
    a = age(dob, at)
    return "0_4" if a < 5 else "5_11" if a < 12 else "12_17" if a < 18 else "18_59" if a < 60 else "60_plus"


HOST_AREAS = ["ML090101", "ML090106", "ML060105", "ML050101"]
SITE_AREAS = ["ML090106", "ML060105"]
ORIGINS = ["ML0601", "ML0501", "ML070101", None]


@dataclass
class World:
    seed: int = 7
    events: list[Any] = field(default_factory=list)  # payloads in publish order
    sites: dict[uuid.UUID, ev.SiteSnapshotV1] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.versions: dict[uuid.UUID, list[reg.HouseholdSnapshotV1]] = defaultdict(list)

    def rng_uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128))

    # -- building ------------------------------------------------------------------------------

    def site(self, code: str, area: str, opened: date, capacity: int | None = 100, **kw: Any) -> ev.SiteSnapshotV1:
        payload = ev.SiteOpenedV1(
            aggregate_id=uuid.uuid5(uuid.NAMESPACE_DNS, f"site-{code}-{self.seed}"),
            version=1,
            effective_date=opened,
            code=code,
            name=f"Site {code}",
            site_type="spontaneous_site",
            location_pcode=area,
            capacity_households=capacity,
            opened_on=opened,
            status="open",
            **kw,
        )
        self.sites[payload.aggregate_id] = payload
        self.events.append(payload)
        return payload

    def close_site(self, site: ev.SiteSnapshotV1, closed: date) -> None:
        payload = ev.SiteClosedV1(
            **{
                **site.model_dump(),
                "version": site.version + 1,
                "effective_date": closed,
                "status": "closed",
                "closed_on": closed,
            }
        )
        self.sites[site.aggregate_id] = payload
        self.events.append(payload)

    def members(self, n: int) -> list[reg.MemberSnapshotV1]:
        out = []
        for i in range(n):
            dob = date(1950, 1, 1) + timedelta(days=self.rng.randrange(0, 75 * 365))
            out.append(
                reg.MemberSnapshotV1(
                    member_id=uuid.UUID(int=self.rng.getrandbits(128)),
                    sex=self.rng.choice(["female", "male"]),
                    date_of_birth=dob,
                    relationship="head" if i == 0 else "child",
                )
            )
        return out

    def register(
        self, on: date, *, site: ev.SiteSnapshotV1 | None = None, area: str | None = None, **kw: Any
    ) -> reg.HouseholdSnapshotV1:
        hid = uuid.UUID(int=self.rng.getrandbits(128))
        group = kw.pop("population_group", self.rng.choice(["idp", "idp", "idp", "repatriate"]))
        fields: dict[str, Any] = {
            "aggregate_id": hid,
            "version": 1,
            "effective_date": on,
            "registration_number": f"MLI-HH-{len(self.versions) + 1:06d}",
            "population_group": group,
            "status": "active",
            "site_id": site.aggregate_id if site else None,
            "location_pcode": site.location_pcode if site else (area or self.rng.choice(HOST_AREAS)),
            "origin_pcode": self.rng.choice(ORIGINS),
            "displacement_reason": self.rng.choice(
                ["armed_conflict", "armed_conflict", "community_tension", "natural_disaster"]
            ),
            "registration_date": on,
            "registered_by_org": "DNDS",
            "members": self.members(self.rng.randint(1, 6)),
        }
        if group == "repatriate":
            fields["country_of_asylum"] = self.rng.choice(["BFA", "NER", "MRT"])
            fields["repatriation_date"] = on
        fields.update(kw)
        payload = reg.HouseholdRegisteredV1(**fields)
        self._add(payload)
        return payload

    def change(self, hh: reg.HouseholdSnapshotV1, cls: type, on: date, **changes: Any) -> reg.HouseholdSnapshotV1:
        latest = self.versions[hh.aggregate_id][-1]
        data = {**latest.model_dump(), **changes, "version": latest.version + 1, "effective_date": on}
        payload = cls(**data)
        self._add(payload)
        return payload

    def relocate(
        self, hh: reg.HouseholdSnapshotV1, on: date, *, site: ev.SiteSnapshotV1 | None = None, area: str | None = None
    ) -> Any:
        return self.change(
            hh,
            reg.HouseholdRelocatedV1,
            on,
            site_id=site.aggregate_id if site else None,
            location_pcode=site.location_pcode if site else area,
        )

    def return_home(self, hh: reg.HouseholdSnapshotV1, on: date, area: str) -> Any:
        return self.change(
            hh,
            reg.HouseholdReturnedV1,
            on,
            population_group="idp_returnee",
            site_id=None,
            location_pcode=area,
            return_date=on,
        )

    def deactivate(self, hh: reg.HouseholdSnapshotV1, on: date, reason: str = "departed") -> Any:
        return self.change(hh, reg.HouseholdDeactivatedV1, on, status="inactive", inactive_reason=reason)

    def _add(self, payload: reg.HouseholdSnapshotV1) -> None:
        self.versions[payload.aggregate_id].append(payload)
        self.events.append(payload)

    # -- expectations (independent of the service) --------------------------------------------------

    def state_at(self, hid: uuid.UUID, at: date) -> reg.HouseholdSnapshotV1 | None:
        current = None
        for v in self.versions[hid]:  # version order; the latest version effective by `at` wins
            if v.effective_date <= at:
                current = v
        return current if current is not None and current.status == "active" else None

    def population(
        self, at: date, dims: list[str], filters: dict[str, list[str]] | None = None
    ) -> dict[tuple, dict[str, int]]:
        filters = filters or {}
        g = gazetteer()
        out: dict[tuple, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_KEYS, 0))
        for hid in self.versions:
            s = self.state_at(hid, at)
            if s is None:
                continue
            anc = g.ancestors(s.location_pcode)
            hh_dims = {
                "admin1": anc[1].pcode,
                "admin2": anc[2].pcode,
                "admin3": s.location_pcode,
                "site": str(s.site_id) if s.site_id else None,
                "population_group": s.population_group.value,
                "displacement_reason": s.displacement_reason.value,
                "origin_admin1": g.ancestors(s.origin_pcode)[1].pcode if s.origin_pcode else None,
                "country_of_asylum": s.country_of_asylum,
            }
            if any(hh_dims[k] not in v for k, v in filters.items() if k in hh_dims):
                continue
            detailed = any(d in ("sex", "age_group") for d in [*dims, *filters])
            seen: set[tuple] = set()
            for m in s.members:
                mdims = {**hh_dims, "sex": m.sex.value, "age_group": bracket(m.date_of_birth, at)}
                if any(mdims[k] not in v for k, v in filters.items() if k in ("sex", "age_group")):
                    continue
                key = tuple(mdims[d] for d in dims)
                row = out[key]
                row["individuals"] += 1
                row[m.sex.value] += 1
                row[f"{m.sex.value}_{mdims['age_group']}"] += 1
                if not detailed and key not in seen:
                    row["households"] += 1
                    seen.add(key)
            if not detailed and not s.members:
                out[tuple(hh_dims[d] for d in dims)]["households"] += 1
        return dict(out)


def now_utc() -> datetime:
    return datetime.now(UTC)
