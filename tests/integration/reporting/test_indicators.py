"""Indicators against real Postgres and Kafka: events built from the shared payload models are
published to Kafka, the reporting consumer projects them, and every figure the API returns is
compared with the figures computed in plain Python from the same fixture world (world.py)."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date
from typing import Any

import pytest

from dtm_shared.events import sites as ev
from tests.integration.reporting.conftest import ReportingEnv, consume_all, import_hxl, publish, record
from tests.integration.reporting.world import COUNT_KEYS, World

pytestmark = pytest.mark.integration

READ = ("indicators:read",)
DATES = [
    date(2025, 2, 28),
    date(2025, 3, 1),  # a 29-Feb-2020 child turns 5
    date(2025, 3, 9),
    date(2025, 3, 10),  # a child turns 5
    date(2025, 6, 30),
    date(2025, 7, 1),  # a back-dated relocation takes effect
    date(2025, 8, 1),  # a return takes effect
    date(2025, 9, 14),
    date(2025, 9, 15),  # a relocation takes effect
    date(2025, 10, 31),
    date(2025, 11, 1),  # a deactivation takes effect
    date(2026, 1, 31),
    date(2026, 2, 1),  # a man turns 60
]
GROUPINGS = [
    [],
    ["population_group"],
    ["admin1", "population_group"],
    ["admin2", "displacement_reason"],
    ["admin3", "site"],
    ["origin_admin1"],
    ["sex"],
    ["age_group"],
    ["admin1", "sex", "age_group"],
    ["country_of_asylum", "population_group"],
]


def build_world() -> tuple[World, dict[str, Any]]:
    from dtm_shared.events import registration as reg

    w = World(seed=11)
    s1 = w.site("S1", "ML090106", date(2024, 6, 1), capacity=50)
    s2 = w.site("S2", "ML060105", date(2024, 9, 1), capacity=20)
    s3 = w.site("S3", "ML090106", date(2025, 1, 1), capacity=None)
    w.close_site(s3, date(2025, 10, 1))
    named: dict[str, Any] = {"s1": s1, "s2": s2, "s3": s3}
    members = [
        reg.MemberSnapshotV1(
            member_id=w.rng_uuid(), sex="female", date_of_birth=date(2020, 3, 10), relationship="child"
        ),
        reg.MemberSnapshotV1(member_id=w.rng_uuid(), sex="male", date_of_birth=date(1966, 2, 1), relationship="head"),
        reg.MemberSnapshotV1(member_id=w.rng_uuid(), sex="male", date_of_birth=date(2020, 2, 29), relationship="child"),
        reg.MemberSnapshotV1(
            member_id=w.rng_uuid(), sex="female", date_of_birth=date(2007, 9, 15), relationship="child"
        ),
    ]
    named["ha"] = w.register(date(2025, 2, 1), site=s1, members=members, population_group="idp")
    named["hb"] = w.register(date(2025, 3, 1), site=s3, population_group="idp")
    named["hc"] = w.register(date(2025, 2, 10), area="ML060105", population_group="idp")
    named["hd"] = w.register(date(2025, 4, 1), site=s2, population_group="idp")
    named["he"] = w.register(date(2025, 5, 1), site=s2, population_group="idp", displacement_reason="armed_conflict")
    for _ in range(45):
        day = date(2025, 1, 1) + __import__("datetime").timedelta(days=w.rng.randrange(0, 330))
        where = w.rng.choice([s1, s2, s3, None, None])
        if where is s3 and day >= date(2025, 10, 1):
            where = None
        w.register(day, site=where)
    w.relocate(named["hb"], date(2025, 9, 15), site=s1)
    w.return_home(named["hc"], date(2025, 8, 1), "ML050101")
    w.deactivate(named["hd"], date(2025, 11, 1))
    w.change(named["he"], reg.HouseholdUpdatedV1, date(2025, 10, 1), displacement_reason="community_tension")
    w.relocate(named["he"], date(2025, 7, 1), area="ML090101")  # recorded late: effective before the update
    # a few random lifecycle changes
    hids = list(w.versions)[5:]
    for hid in hids[:6]:
        hh = w.versions[hid][0]
        w.relocate(
            hh, max(hh.effective_date, date(2025, 6, 1)) + __import__("datetime").timedelta(days=20), area="ML060105"
        )
    for hid in hids[6:9]:
        hh = w.versions[hid][0]
        if hh.population_group.value == "idp":
            w.return_home(hh, date(2025, 12, 1), "ML050101")
    for hid in hids[9:12]:
        w.deactivate(w.versions[hid][0], date(2026, 1, 15), reason="duplicate")
    # who does what where
    a = lambda n: __import__("uuid").uuid5(__import__("uuid").NAMESPACE_DNS, f"activity-{n}")  # noqa: E731
    w.events += [
        ev.ServiceActivityRecordedV1(
            aggregate_id=a(1),
            version=1,
            effective_date=date(2025, 1, 1),
            site_id=s1.aggregate_id,
            organization="ORG-A",
            sector="health",
            activity="clinic",
            start_date=date(2025, 1, 1),
            status="ongoing",
        ),
        ev.ServiceActivityRecordedV1(
            aggregate_id=a(2),
            version=1,
            effective_date=date(2025, 1, 1),
            site_id=s1.aggregate_id,
            organization="ORG-A",
            sector="wash",
            activity="water_trucking",
            start_date=date(2025, 1, 1),
            status="ongoing",
        ),
        ev.ServiceActivityEndedV1(
            aggregate_id=a(2),
            version=2,
            effective_date=date(2025, 6, 30),
            site_id=s1.aggregate_id,
            organization="ORG-A",
            sector="wash",
            activity="water_trucking",
            start_date=date(2025, 1, 1),
            end_date=date(2025, 6, 30),
            status="ended",
        ),
        ev.ServiceActivityRecordedV1(
            aggregate_id=a(3),
            version=1,
            effective_date=date(2025, 3, 1),
            site_id=s1.aggregate_id,
            organization="ORG-B",
            sector="wash",
            activity="water_trucking",
            start_date=date(2025, 3, 1),
            status="ongoing",
        ),
        ev.ServiceActivityRecordedV1(
            aggregate_id=a(4),
            version=1,
            effective_date=date(2025, 3, 1),
            site_id=s2.aggregate_id,
            organization="ORG-C",
            sector="education",
            activity="school",
            start_date=date(2026, 9, 1),
            status="planned",
        ),
        ev.CommitteeUpdatedV1(
            aggregate_id=a(5),
            version=1,
            effective_date=date(2025, 1, 1),
            admin1_pcode="ML09",
            name="Comité régional de Bamako",
            member_organizations=["DNDS", "UNHCR"],
            quorum=2,
        ),
    ]
    assess = lambda n, site, rnd, on, ind: ev.SiteAssessedV1(  # noqa: E731
        aggregate_id=a(100 + n),
        version=1,
        effective_date=on,
        site_id=site.aggregate_id,
        round_number=rnd,
        assessed_on=on,
        households=ind // 4,
        individuals=ind,
        individuals_by_sex_age={},
        individuals_by_reason={},
        coverage={},
        priority_needs=["wash"],
        risks=["flood"],
    )
    w.events += [
        assess(1, s1, 1, date(2025, 3, 1), 40),
        assess(2, s2, 1, date(2025, 3, 5), 12),
        assess(3, s1, 2, date(2025, 9, 1), 60),
    ]
    rep = lambda n, site, period, status, v: ev.ActivityReportSubmittedV1(  # noqa: E731
        aggregate_id=a(200 + n),
        version=v,
        effective_date=date(2025, 10, 5),
        site_id=site.aggregate_id,
        period=period,
        report_version=1,
        status=status,
        submitted_by_org="ORG-A",
        submitted_at="2025-10-05T10:00:00Z",
        key_figures={},
        approvals=[],
    )
    w.events += [
        rep(1, s1, "2025-09", "submitted", 1),
        rep(1, s1, "2025-09", "validated", 2),
        rep(2, s2, "2025-09", "submitted", 1),
        rep(3, s1, "2025-10", "rejected", 2),
    ]
    return w, named


@pytest.fixture(scope="module")
async def world(rep: ReportingEnv) -> tuple[World, dict[str, Any]]:
    w, named = build_world()
    await publish(rep, [record(p) for p in w.events])
    stats = await consume_all(rep)
    assert stats.fallbacks == 0 and stats.dead_lettered == 0
    return w, named


def key_of(item: dict[str, Any], dims: list[str]) -> tuple:
    return tuple(item[d] for d in dims)


def strip(expected: dict[str, int], detailed: bool) -> dict[str, int]:
    out = dict(expected)
    if detailed:
        out["households"] = None
    return out


async def check_population(
    rep: ReportingEnv, w: World, at: date, dims: list[str], filters: dict[str, list[str]] | None = None
) -> None:
    params: dict[str, Any] = {"as_of": at.isoformat(), "group_by": ",".join(dims)}
    for k, v in (filters or {}).items():
        params[k] = ",".join(v)
    r = await rep.client.get("/v1/indicators/population", params=params, headers=rep.headers(*READ))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == at.isoformat() and "freshness" in body
    detailed = any(d in ("sex", "age_group") for d in [*dims, *(filters or {})])
    got = {key_of(i, dims): {k: i[k] for k in COUNT_KEYS} for i in body["items"]}
    expected = {
        k: strip(v, detailed) for k, v in w.population(at, dims, filters).items() if v["individuals"] or v["households"]
    }
    assert got == expected, (at, dims, filters)
    total = w.population(at, [], filters).get((), None)
    if total:
        assert body["total"] == strip(total, any(f in ("sex", "age_group") for f in filters or {}))


async def test_population_at_every_date_and_grouping(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, _ = world
    for at, dims in itertools.product(DATES, GROUPINGS):
        await check_population(rep, w, at, dims)


async def test_population_filters(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, named = world
    at = date(2025, 12, 31)
    for filters in (
        {"admin1": ["ML09"]},
        {"population_group": ["idp", "repatriate"]},
        {"sex": ["female"]},
        {"age_group": ["0_4", "60_plus"]},
        {"site": [str(named["s1"].aggregate_id)]},
        {"displacement_reason": ["community_tension"], "admin2": ["ML0901"]},
    ):
        await check_population(rep, w, at, ["admin2"], filters)
        await check_population(rep, w, at, ["sex", "age_group"], filters)


async def test_as_of_cases_by_hand(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    """The designed household: a girl born 2020-03-10 is 0_4 on 9 March 2025 and 5_11 on the 10th;
    a boy born 29 Feb 2020 turns 5 on 1 March 2025; the head born 1966-02-01 is 60 on 2026-02-01."""
    _, named = world
    site = str(named["s1"].aggregate_id)
    h = rep.headers(*READ)

    async def at(day: str) -> dict[str, int]:
        r = await rep.client.get(
            "/v1/indicators/population", params={"as_of": day, "site": site, "group_by": "site"}, headers=h
        )
        assert r.status_code == 200, r.text
        return r.json()["items"][0]

    before, after = await at("2025-03-09"), await at("2025-03-10")
    assert after["female_0_4"] == before["female_0_4"] - 1 and after["female_5_11"] == before["female_5_11"] + 1
    feb28, mar1 = await at("2025-02-28"), await at("2025-03-01")
    assert mar1["male_5_11"] - feb28["male_5_11"] >= 1  # the 29-Feb child (others may arrive that day)
    jan31, feb1 = await at("2026-01-31"), await at("2026-02-01")
    assert feb1["male_60_plus"] == jan31["male_60_plus"] + 1 and feb1["male_18_59"] == jan31["male_18_59"] - 1


async def test_summary(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, _ = world
    for at in (date(2025, 6, 30), date(2025, 10, 15)):
        r = await rep.client.get("/v1/indicators/summary", params={"as_of": at.isoformat()}, headers=rep.headers(*READ))
        assert r.status_code == 200, r.text
        body = r.json()
        expected = w.population(at, ["population_group"])
        for g in body["population_groups"]:
            e = expected.get((g["population_group"],), {"households": 0, "individuals": 0})
            assert (g["households"], g["individuals"]) == (e["households"], e["individuals"])
        open_sites = sum(1 for s in w.sites.values() if s.opened_on <= at and (s.closed_on is None or s.closed_on > at))
        assert body["open_sites"] == open_sites
        assert body["freshness"]["last_event_at"] is not None
    r = await rep.client.get("/v1/indicators/summary", params={"as_of": "2025-10-15"}, headers=rep.headers(*READ))
    body = r.json()
    assert body["latest_round"] == 2 and body["sites_assessed_in_latest_round"] == 1
    assert body["organizations_active"] == 2  # ORG-A health, ORG-B wash; ORG-A wash ended, ORG-C planned
    r = await rep.client.get("/v1/indicators/summary", params={"as_of": "2025-04-01"}, headers=rep.headers(*READ))
    assert r.json()["latest_round"] == 1 and r.json()["sites_assessed_in_latest_round"] == 2


async def test_displacement_reasons(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, _ = world
    at = date(2025, 12, 31)
    r = await rep.client.get(
        "/v1/indicators/displacement-reasons",
        params={"as_of": at.isoformat(), "level": "admin3"},
        headers=rep.headers(*READ),
    )
    assert r.status_code == 200, r.text
    expected = w.population(at, ["admin3", "displacement_reason"])
    for area in r.json()["items"]:
        total = sum(v["individuals"] for (a, _), v in expected.items() if a == area["pcode"])
        assert area["individuals"] == total
        for reason in area["reasons"]:
            e = expected[(area["pcode"], reason["displacement_reason"])]["individuals"]
            assert reason["individuals"] == e and reason["share"] == pytest.approx(e / total, abs=1e-4)
        best = max(area["reasons"], key=lambda x: x["individuals"])
        assert area["main_reason"] == best["displacement_reason"]
    assert {a["pcode"] for a in r.json()["items"]} == {a for (a, _), v in expected.items() if v["individuals"]}


async def test_returns_and_repatriations(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, _ = world
    at = date(2026, 1, 31)
    r = await rep.client.get("/v1/indicators/returns", params={"as_of": at.isoformat()}, headers=rep.headers(*READ))
    assert r.status_code == 200, r.text
    body = r.json()
    ret = w.population(at, ["admin2"], {"population_group": ["idp_returnee"]})
    assert {a["pcode"]: a["individuals"] for a in body["returnees"]} == {k[0]: v["individuals"] for k, v in ret.items()}
    assert body["returnees_total"] > 0
    repat = w.population(at, ["country_of_asylum", "admin2"], {"population_group": ["repatriate"]})
    got = {(c["country_of_asylum"], a["pcode"]): a["individuals"] for c in body["repatriates"] for a in c["areas"]}
    assert got == {k: v["individuals"] for k, v in repat.items()}


async def test_site_indicators(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, named = world
    at = date(2025, 10, 15)
    r = await rep.client.get("/v1/indicators/sites", params={"as_of": at.isoformat()}, headers=rep.headers(*READ))
    assert r.status_code == 200, r.text
    items = {i["code"]: i for i in r.json()["items"]}
    pop = w.population(at, ["site"])
    s1 = items["S1"]
    e1 = pop[(str(named["s1"].aggregate_id),)]
    assert (s1["registered_households"], s1["registered_individuals"]) == (e1["households"], e1["individuals"])
    assert (
        s1["assessed_individuals"] == 60 and s1["last_assessment_round"] == 2 and s1["last_assessed_on"] == "2025-09-01"
    )
    assert s1["individuals_difference"] == e1["individuals"] - 60
    assert s1["occupancy"] == pytest.approx(e1["households"] / 50, abs=1e-4)
    assert s1["latest_report_period"] == "2025-10" and s1["latest_report_status"] == "rejected"
    assert items["S2"]["latest_report_status"] == "submitted" and items["S2"]["assessed_individuals"] == 12
    e3 = pop.get((str(named["s3"].aggregate_id),), {"individuals": 0})
    assert items["S3"]["status_at_date"] == "closed" and items["S3"]["registered_individuals"] == e3["individuals"]
    assert items["S3"]["capacity_households"] is None and items["S3"]["occupancy"] is None


async def test_service_gaps_and_overlaps(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, _ = world
    at = date(2025, 5, 1)
    r = await rep.client.get(
        "/v1/indicators/service-gaps", params={"as_of": at.isoformat()}, headers=rep.headers(*READ)
    )
    assert r.status_code == 200, r.text
    body = r.json()
    gaps = {(g["site_code"], g["sector"]) for g in body["gaps"]}
    pop = w.population(at, ["site"])
    sectors = {
        "wash",
        "shelter",
        "health",
        "education",
        "food_security",
        "nutrition",
        "protection",
        "livelihoods",
        "cccm",
    }
    expected = set()
    covered = {("S1", "health"), ("S1", "wash")}
    for s in w.sites.values():
        open_ = s.opened_on <= at and (s.closed_on is None or s.closed_on > at)
        if open_ and pop.get((str(s.aggregate_id),), {"individuals": 0})["individuals"] > 0:
            expected |= {(s.code, sec) for sec in sectors if (s.code, sec) not in covered}
    assert gaps == expected
    assert [
        (o["site_code"], o["sector"], o["activity"], o["organizations"], o["overlap_from"], o["overlap_to"])
        for o in body["overlaps"]
    ] == [("S1", "wash", "water_trucking", ["ORG-A", "ORG-B"], "2025-03-01", "2025-06-30")]
    later = await rep.client.get(
        "/v1/indicators/service-gaps", params={"as_of": "2025-08-01", "sector": "wash"}, headers=rep.headers(*READ)
    )
    assert ("S1", "wash") not in {(g["site_code"], g["sector"]) for g in later.json()["gaps"]}  # ORG-B still there
    early = await rep.client.get(
        "/v1/indicators/service-gaps", params={"as_of": "2025-02-15"}, headers=rep.headers(*READ)
    )
    assert early.json()["overlaps"] == []  # ORG-B started on 1 March


async def test_timeseries(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    w, _ = world
    for interval, frm, to, dims in (
        ("month", "2025-01-15", "2025-12-20", ["population_group"]),
        ("quarter", "2025-01-01", "2026-02-10", ["admin1", "sex"]),
    ):
        r = await rep.client.get(
            "/v1/indicators/population-timeseries",
            params={"interval": interval, "from": frm, "to": to, "group_by": ",".join(dims)},
            headers=rep.headers(*READ),
        )
        assert r.status_code == 200, r.text
        points = r.json()["points"]
        assert len(points) == (12 if interval == "month" else 5)
        assert points[-1]["as_of"] == to
        for p in points:
            at = date.fromisoformat(p["as_of"])
            detailed = "sex" in dims
            got = {key_of(i, dims): {k: i[k] for k in COUNT_KEYS} for i in p["items"]}
            exp = {
                k: strip(v, detailed) for k, v in w.population(at, dims).items() if v["individuals"] or v["households"]
            }
            assert got == exp, p["period"]


async def test_report_compliance(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    r = await rep.client.get(
        "/v1/indicators/report-compliance", params={"from": "2025-09", "to": "2025-10"}, headers=rep.headers(*READ)
    )
    assert r.status_code == 200, r.text
    rows = {(i["period"], i["admin1"]): i for i in r.json()["items"]}
    # September: S1, S3 open in ML09 (S1 validated), S2 open in ML06 (submitted only)
    assert (rows[("2025-09", "ML09")]["open_sites"], rows[("2025-09", "ML09")]["validated_reports"]) == (2, 1)
    assert rows[("2025-09", "ML09")]["share"] == 0.5
    assert (rows[("2025-09", "ML06")]["open_sites"], rows[("2025-09", "ML06")]["validated_reports"]) == (1, 0)
    # October: S3 closed on 1 October; S1's October report rejected
    assert (rows[("2025-10", "ML09")]["open_sites"], rows[("2025-10", "ML09")]["validated_reports"]) == (1, 0)


async def test_exports_csv_hxl_json_with_suppression(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    hxl = import_hxl()
    w, _ = world
    at = date(2025, 12, 31)
    expected = w.population(at, ["admin3", "population_group"])
    params = {"as_of": at.isoformat(), "group_by": "admin3,population_group"}
    plain = await rep.client.get(
        "/v1/exports/population", params={**params, "format": "csv"}, headers=rep.headers(*READ)
    )
    assert plain.status_code == 200 and plain.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(plain.text)))
    assert len(rows) == len([v for v in expected.values() if v["individuals"] or v["households"]])
    small = 0
    for row in rows:
        e = expected[(row["admin3"], row["population_group"])]
        if e["individuals"] < 5:
            small += 1
            assert row["suppressed"] == "yes" and row["individuals"] == "" and row["female_0_4"] == ""
        else:
            assert row["suppressed"] == "no" and int(row["individuals"]) == e["individuals"]
            assert int(row["female_5_11"]) == e["female_5_11"]
    assert small > 0, "the fixture should have small cells"
    detail = await rep.client.get(
        "/v1/exports/population",
        params={**params, "format": "csv"},
        headers=rep.headers("indicators:read", "households:pii"),
    )
    rows = list(csv.DictReader(io.StringIO(detail.text)))
    assert all(r["suppressed"] == "no" for r in rows)
    assert {(r["admin3"], r["population_group"]): int(r["individuals"]) for r in rows} == {
        k: v["individuals"] for k, v in expected.items() if v["individuals"] or v["households"]
    }
    # HXL, parsed with libhxl, filtered to IDPs: #affected+idps+ind
    tagged = await rep.client.get(
        "/v1/exports/population",
        params={"as_of": at.isoformat(), "group_by": "admin1", "format": "hxl", "population_group": "idp"},
        headers=rep.headers("indicators:read", "admin"),
    )
    assert tagged.status_code == 200, tagged.text
    dataset = hxl.data(io.BytesIO(tagged.content), hxl.InputOptions(allow_local=True))
    columns = list(dataset.columns)
    hxl_rows = list(dataset)
    assert any(c.tag == "#adm1" and c.has_attribute("code") for c in columns)
    assert any(c.tag == "#affected" and c.has_attribute("idps") and c.has_attribute("ind") for c in columns)
    assert any(c.tag == "#affected" and {"f", "children", "idps"} <= set(c.attributes) for c in columns)
    exp = w.population(at, ["admin1"], {"population_group": ["idp"]})
    got = {row.get("#adm1+code"): int(row.get("#affected+ind")) for row in hxl_rows}
    assert got == {k[0]: v["individuals"] for k, v in exp.items() if v["individuals"]}
    females = {row.get("#adm1+code"): int(row.get("#affected+f+children")) for row in hxl_rows}
    assert females == {k[0]: v["female_5_11"] for k, v in exp.items() if v["individuals"]}
    js = await rep.client.get("/v1/exports/population", params={**params, "format": "json"}, headers=rep.headers(*READ))
    body = js.json()
    assert body["suppression_threshold"] == 5 and body["as_of"] == at.isoformat()
    assert sum(1 for i in body["items"] if i["suppressed"]) == small


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/v1/indicators/population", {"group_by": "planet"}, "group_by"),
        ("/v1/indicators/population", {"group_by": "sex,sex"}, "group_by"),
        ("/v1/indicators/population", {"as_of": "2999-01-01"}, "as_of"),
        ("/v1/indicators/population", {"as_of": "not-a-date"}, "as_of"),
        ("/v1/indicators/population", {"admin1": "ML0901"}, "admin1"),
        ("/v1/indicators/population", {"sex": "other"}, "sex"),
        ("/v1/indicators/population", {"site": "xyz"}, "site"),
        ("/v1/indicators/population-timeseries", {"interval": "week"}, "interval"),
        ("/v1/indicators/population-timeseries", {"from": "2025-06-01", "to": "2025-01-01"}, "from"),
        ("/v1/indicators/displacement-reasons", {"level": "admin4"}, "level"),
        ("/v1/indicators/service-gaps", {"sector": "magic"}, "sector"),
        ("/v1/indicators/sites", {"admin1": "ML0901"}, "admin1"),
        ("/v1/indicators/returns", {"level": "country"}, "level"),
        ("/v1/indicators/report-compliance", {"from": "2025/01"}, "from"),
        ("/v1/exports/population", {"format": "xlsx"}, "format"),
    ],
)
async def test_bad_inputs_are_422_problems(rep: ReportingEnv, path: str, params: dict, field: str) -> None:
    r = await rep.client.get(path, params=params, headers=rep.headers(*READ))
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert any(field in e["loc"] for e in r.json()["errors"])


async def test_auth(rep: ReportingEnv) -> None:
    assert (await rep.client.get("/v1/indicators/summary")).status_code == 401
    r = await rep.client.get("/v1/indicators/summary", headers=rep.headers("sites:read"))
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    assert (await rep.client.get("/v1/exports/population", headers=rep.headers("households:read"))).status_code == 403


async def test_dashboard_page_renders_from_read_models(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    r = await rep.client.get("/", params={"as_of": "2025-12-31"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert html.count("<svg") >= 3 and "IOM" in html and "COD-AB" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    w, _ = world
    total = sum(v["individuals"] for v in w.population(date(2025, 12, 31), ["population_group"]).values())
    assert total > 0


async def test_backdated_changes_after_checkpoints_and_replays(rep: ReportingEnv, world: tuple[World, dict]) -> None:
    """Checkpoints exist for the months queried above; changes effective in those months, recorded
    now, must move them; a replayed (duplicate) event and an older version change nothing."""
    w, named = world
    from dtm_shared.events import registration as reg

    before = w.population(date(2025, 6, 30), ["admin2"])
    await check_population(rep, w, date(2025, 6, 30), ["admin2"])  # cached by the API from here on
    stale = w.versions[named["ha"].aggregate_id][0]
    changes = [
        w.relocate(named["ha"], date(2025, 4, 20), area="ML050101"),
        w.deactivate(w.versions[list(w.versions)[20]][-1], date(2025, 3, 3)),
        w.change(named["hb"], reg.HouseholdUpdatedV1, date(2025, 2, 1), members=w.members(3)),
    ]
    dup = record(changes[0])
    await publish(rep, [record(c) for c in changes[1:]] + [dup, dup, record(stale)])
    stats = await consume_all(rep)
    assert stats.skipped >= 1  # the duplicate event id
    assert w.population(date(2025, 6, 30), ["admin2"]) != before
    await check_population(rep, w, date(2025, 6, 30), ["admin2"])  # the cached answer was invalidated
    for at, dims in itertools.product(DATES, (["admin2", "population_group"], ["sex", "age_group"], ["site"])):
        await check_population(rep, w, at, dims)
    held = w.versions[named["ha"].aggregate_id][-1].version
    r = await rep.client.get(
        "/v1/indicators/population",
        params={"as_of": "2025-05-01", "admin3": "ML050101", "group_by": "admin3"},
        headers=rep.headers(*READ),
    )
    assert r.json()["items"][0]["individuals"] >= 4 and held == 2
