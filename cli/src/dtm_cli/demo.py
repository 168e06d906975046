"""Demo data for `make up`: sites and households in real Mali communes.

Derived from IOM DTM Mali's baseline assessment round 64 (2020-04-30, `reference/`): each
commune with IDPs gets households in proportion to its IDP and returnee counts (scaled down by
`scale`), and the communes with the most IDP households get a displacement site. DTM's admin3
codes in that round still follow the 2015 order, so communes are joined to the 2021 COD-AB by
cercle and name (DESIGN/reference notes). Names of people are drawn at random from common
Malian given and family names; every run with the same seed produces the same data, and the
loader is idempotent (site codes and household `external_id`s are stable).
"""

from __future__ import annotations

import csv
import difflib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from dtm_shared.pcodes import fold, gazetteer

GIVEN_F = [
    "Aminata",
    "Fatoumata",
    "Mariam",
    "Awa",
    "Kadiatou",
    "Oumou",
    "Hawa",
    "Djeneba",
    "Assitan",
    "Aïssata",
    "Safiatou",
    "Rokia",
    "Salimata",
    "Fanta",
    "Nana",
    "Bintou",
]
GIVEN_M = [
    "Moussa",
    "Mamadou",
    "Boubacar",
    "Oumar",
    "Ibrahim",
    "Seydou",
    "Amadou",
    "Souleymane",
    "Abdoulaye",
    "Bakary",
    "Modibo",
    "Issa",
    "Hamidou",
    "Drissa",
    "Youssouf",
    "Adama",
]
FAMILY = [
    "Traoré",
    "Coulibaly",
    "Diarra",
    "Keïta",
    "Cissé",
    "Touré",
    "Maïga",
    "Sangaré",
    "Diallo",
    "Konaté",
    "Dembélé",
    "Sidibé",
    "Ag Mohamed",
    "Walet Ahmed",
    "Guindo",
    "Dicko",
    "Sow",
    "Kanté",
]
ASYLUM = ["BFA", "NER", "MRT", "DZA"]
NEEDS = ["disability", "serious_medical_condition", "older_person_at_risk", "pregnant_or_lactating", "single_parent"]
REASONS = ["armed_conflict"] * 8 + ["community_tension", "natural_disaster"]


@dataclass
class Commune:
    pcode: str
    name: str
    idp_hh: int
    returnee_hh: int


def baseline_file() -> Path:
    from dtm_cli.stack import repo_root

    return repo_root() / "reference" / "dtm_mali_baseline_2014_2020.csv"


def communes(round_number: int = 64) -> list[Commune]:
    """Round `round_number`'s communes, joined to 2021 P-codes by cercle and (folded) name."""
    g = gazetteer()
    out: dict[str, Commune] = {}
    with baseline_file().open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if int(row["round"]) != round_number or not row["admin2_pcode_dtm"].startswith("MLI"):
                continue
            admin2 = "ML" + row["admin2_pcode_dtm"][3:]
            candidates = {fold(a.name): a for a in g.search(level=3, parent=admin2)}
            wanted = fold(row["admin3_name"]).removesuffix(" commune").strip()
            match = candidates.get(wanted) or next(
                (candidates[c] for c in difflib.get_close_matches(wanted, list(candidates), n=1, cutoff=0.75)), None
            )
            if match is None:
                continue
            c = out.setdefault(match.pcode, Commune(match.pcode, match.name, 0, 0))
            c.idp_hh += int(float(row["idp_hh"] or 0))
            c.returnee_hh += int(float(row["returnees_hh"] or 0))
    return sorted(out.values(), key=lambda c: -c.idp_hh)


def demo_sites(cs: list[Commune], n: int = 24) -> list[dict[str, Any]]:
    rng = random.Random(64)
    types = ["spontaneous_site", "planned_site", "collective_centre", "reception_centre"]
    return [
        {
            "code": f"DEMO-{c.pcode}",
            "name": f"Site {c.name}",
            "site_type": types[i % len(types)] if i else "spontaneous_site",
            "location_pcode": c.pcode,
            "capacity_households": int(max(50, round(c.idp_hh * rng.uniform(0.3, 0.8), -1))),
            "management_agency": rng.choice(["DNDS", "DRDSES", "IOM", "UNHCR", "NRC"]),
            "opened_on": (date(2018, 1, 1) + timedelta(days=rng.randrange(0, 700))).isoformat(),
        }
        for i, c in enumerate(cs[:n])
    ]


def _member(rng: random.Random, head: bool, registration: date) -> dict[str, Any]:
    sex = rng.choice(["female", "male"])
    age = (
        rng.randint(20, 70)
        if head
        else rng.choice(
            [rng.randint(0, 4), rng.randint(5, 11), rng.randint(12, 17), rng.randint(18, 59), rng.randint(60, 85)]
        )
    )
    dob = registration - timedelta(days=age * 365 + rng.randrange(0, 365))
    return {
        "given_name": rng.choice(GIVEN_F if sex == "female" else GIVEN_M),
        "family_name": rng.choice(FAMILY),
        "sex": sex,
        "date_of_birth": dob.isoformat(),
        "relationship": "head"
        if head
        else rng.choice(["spouse", "child", "child", "child", "parent", "other_relative"]),
        "specific_needs": [rng.choice(NEEDS)] if rng.random() < 0.08 else [],
        "phone": f"+223{rng.randint(60000000, 99999999)}" if head and rng.random() < 0.6 else None,
    }


def demo_households(cs: list[Commune], site_ids: dict[str, str], scale: int = 20) -> Iterator[dict[str, Any]]:
    rng = random.Random(2020)
    origins = [a.pcode for a in gazetteer().search(level=3) if a.pcode[:4] in {"ML06", "ML07", "ML05", "ML08", "ML10"}]
    n = 0
    for c in cs:
        groups = [("idp", max(1, c.idp_hh // scale)), ("idp_returnee", c.returnee_hh // (scale * 3))]
        if c.idp_hh > 300:
            groups.append(("repatriate", max(1, c.idp_hh // (scale * 10))))
        for group, count in groups:
            for _ in range(count):
                n += 1
                displaced = date(2012, 1, 1) + timedelta(days=rng.randrange(0, 2800))
                registered = min(displaced + timedelta(days=rng.randrange(5, 400)), date(2020, 4, 30))
                if group == "idp_returnee":
                    registered = min(registered, date(2020, 4, 1))
                body: dict[str, Any] = {
                    "external_id": f"demo-{n:06d}",
                    "population_group": group,
                    "origin_pcode": rng.choice(origins),
                    "displacement_reason": rng.choice(REASONS),
                    "displacement_date": displaced.isoformat(),
                    "registration_date": registered.isoformat(),
                    "members": [_member(rng, i == 0, registered) for i in range(rng.choice([1, 2, 3, 4, 5, 6, 7, 8]))],
                }
                if group == "idp" and c.pcode in site_ids and rng.random() < 0.7:
                    body["site_id"] = site_ids[c.pcode]
                else:
                    body["location_pcode"] = c.pcode
                if group == "idp_returnee":
                    body["return_date"] = registered.isoformat()
                if group == "repatriate":
                    body["country_of_asylum"] = rng.choice(ASYLUM)
                    body["repatriation_date"] = registered.isoformat()
                    body["origin_pcode"] = c.pcode
                yield body


def load(
    registration_url: str, sites_url: str, token_for: Callable[[str], str], *, scale: int = 20, timeout: float = 120.0
) -> dict[str, int]:
    """Create the demo sites (with an assessment, partners' activities, regional committees and
    monthly reports) and register the demo households, all through the public APIs. `token_for`
    gives a token for an organisation (reviews need committee members' tokens)."""
    cs = communes()
    headers = {"Authorization": f"Bearer {token_for('DNDS')}"}
    counts = {
        "sites_created": 0,
        "sites_existing": 0,
        "assessments": 0,
        "activities": 0,
        "reports": 0,
        "created": 0,
        "existing": 0,
        "rejected": 0,
    }
    site_ids: dict[str, str] = {}
    with httpx.Client(headers=headers, timeout=timeout) as client:
        for body in demo_sites(cs):
            r = client.post(f"{sites_url}/v1/sites", json=body)
            if r.status_code == 201:
                counts["sites_created"] += 1
                site_ids[body["location_pcode"]] = r.json()["id"]
            elif r.status_code == 409:
                counts["sites_existing"] += 1
                found = client.get(f"{sites_url}/v1/sites", params={"code": body["code"], "limit": 1})
                items = found.json().get("items", []) if found.status_code == 200 else []
                match = [s for s in items if s.get("code") == body["code"]]
                if match:
                    site_ids[body["location_pcode"]] = match[0]["id"]
            else:
                raise RuntimeError(f"createSite {body['code']}: {r.status_code} {r.text[:300]}")
        by_pcode = {c.pcode: c for c in cs}
        for pcode, site_id in site_ids.items():
            _site_activity(client, sites_url, site_id, by_pcode[pcode], scale, counts)
        _committees_and_reports(client, sites_url, site_ids, token_for, counts)
        batch: list[dict[str, Any]] = []
        for household in demo_households(cs, site_ids, scale):
            batch.append(household)
            if len(batch) == 1000:
                _send(client, registration_url, batch, counts)
                batch = []
        if batch:
            _send(client, registration_url, batch, counts)
    return counts


def _send(client: httpx.Client, url: str, batch: list[dict[str, Any]], counts: dict[str, int]) -> None:
    """Register a batch; items refused only because registration's site replica has not yet
    caught up with `dtm.sites` are sent again for up to a minute."""
    import time

    deadline = time.monotonic() + 60
    while True:
        r = client.post(f"{url}/v1/households/batch", json={"households": batch})
        if r.status_code != 200:
            raise RuntimeError(f"registerHouseholdsBatch: {r.status_code} {r.text[:300]}")
        retry = []
        for item in r.json()["items"]:
            waiting = item["status"] == "rejected" and all(
                "site_id" in e["loc"] and e["msg"] == "unknown site" for e in item["errors"]
            )
            if waiting and time.monotonic() < deadline:
                retry.append(batch[item["index"]])
            else:
                counts[item["status"]] += 1
        if not retry:
            return
        batch = retry
        time.sleep(1)


PARTNERS = {
    "wash": ["UNICEF", "OXFAM", "SOLIDARITES"],
    "shelter": ["NRC", "UNHCR"],
    "health": ["MSF", "IMC"],
    "food_security": ["WFP"],
    "protection": ["UNHCR", "DRC"],
    "education": ["UNICEF", "NRC"],
    "cccm": ["IOM", "DNDS"],
}
ACTIVITY = {
    "wash": "water_trucking",
    "shelter": "emergency_shelter",
    "health": "mobile_clinic",
    "food_security": "food_distribution",
    "protection": "case_management",
    "education": "temporary_classes",
    "cccm": "site_management",
}


def _split(total: int, weights: list[float]) -> list[int]:
    """Integers proportional to `weights` that add up to `total` exactly."""
    raw = [total * w / sum(weights) for w in weights]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


def _site_activity(
    client: httpx.Client, url: str, site_id: str, c: Commune, scale: int, counts: dict[str, int]
) -> None:
    rng = random.Random(c.pcode)
    households = max(5, c.idp_hh // scale)
    individuals = households * rng.randint(4, 6)
    brackets = [
        "female_0_4",
        "female_5_11",
        "female_12_17",
        "female_18_59",
        "female_60_plus",
        "male_0_4",
        "male_5_11",
        "male_12_17",
        "male_18_59",
        "male_60_plus",
    ]
    by_sex_age = dict(zip(brackets, _split(individuals, [9, 11, 8, 20, 3, 9, 11, 8, 18, 3]), strict=True))
    conflict, tension, disaster = _split(individuals, [8, 1.5, 0.5])
    sectors = list(ACTIVITY)
    covered = rng.sample(sectors, rng.randint(2, 5))
    assessment = {
        "round_number": 1,
        "assessed_on": "2020-04-30",
        "households": households,
        "individuals": individuals,
        "individuals_by_sex_age": by_sex_age,
        "individuals_by_reason": {
            "armed_conflict": conflict,
            "community_tension": tension,
            "natural_disaster": disaster,
        },
        "coverage": {s: ("adequate" if s in covered[:1] else "partial" if s in covered else "none") for s in sectors},
        "priority_needs": [s for s in sectors if s not in covered][:3],
        "risks": rng.sample(["flood", "fire", "eviction", "insecurity", "overcrowding"], 2),
    }
    if client.post(f"{url}/v1/sites/{site_id}/assessments", json=assessment).status_code == 201:
        counts["assessments"] += 1
    for sector in covered:
        orgs = PARTNERS[sector][: 2 if rng.random() < 0.3 else 1]  # sometimes two partners overlap
        for org in orgs:
            activity = {"organization": org, "sector": sector, "activity": ACTIVITY[sector], "start_date": "2020-01-15"}
            if client.post(f"{url}/v1/sites/{site_id}/service-activities", json=activity).status_code == 201:
                counts["activities"] += 1


def _committees_and_reports(
    client: httpx.Client, url: str, site_ids: dict[str, str], token_for: Callable[[str], str], counts: dict[str, int]
) -> None:
    members = ["DNDS", "UNHCR", "IOM"]
    for admin1 in sorted({p[:4] for p in site_ids}):
        client.post(
            f"{url}/v1/committees",
            json={
                "admin1_pcode": admin1,
                "name": f"Comité régional {admin1}",
                "member_organizations": members,
                "quorum": 2,
            },
        )
    for i, site_id in enumerate(site_ids.values()):
        r = client.post(
            f"{url}/v1/sites/{site_id}/activity-reports",
            json={
                "period": "2020-04",
                "key_figures": {"households_present": 100 + i, "new_arrivals": i % 7},
                "narrative": "Demo monthly report.",
            },
        )
        if r.status_code != 201:
            continue
        counts["reports"] += 1
        if i % 3 == 2:
            continue  # left pending review
        for org in members[1:]:  # the submitting organisation (DNDS) does not review its own report
            client.post(
                f"{url}/v1/activity-reports/{r.json()['id']}/reviews",
                json={"decision": "approve"},
                headers={"Authorization": f"Bearer {token_for(org)}"},
            )
