"""Pure shaping logic of the reporting service (no database)."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from dtm_shared.problems import ValidationProblem
from reporting import dashboard, exports, service
from reporting.schemas import PopulationRow

# h, f0..f4, m0..m4
VEC = (3, 1, 2, 0, 4, 1, 0, 1, 1, 3, 2)


def test_split_rows_by_sex_and_age_keeps_totals() -> None:
    cells = {("ML09",): VEC}
    by_sex = service.split_rows(cells, ["admin1"], ["admin1", "sex"], {})
    assert [(r["sex"], r["individuals"], r["households"]) for r in by_sex] == [("female", 8, None), ("male", 7, None)]
    by_age = service.split_rows(cells, ["admin1"], ["admin1", "age_group"], {})
    assert {r["age_group"]: r["individuals"] for r in by_age} == {
        "0_4": 1,
        "5_11": 3,
        "12_17": 1,
        "18_59": 7,
        "60_plus": 3,
    }
    plain = service.split_rows(cells, ["admin1"], ["admin1"], {})
    assert plain[0]["households"] == 3 and plain[0]["individuals"] == 15 and plain[0]["female_18_59"] == 4


def test_filters_mask_columns() -> None:
    rows = service.split_rows({(): VEC}, [], [], {"sex": ["male"], "age_group": ["18_59", "60_plus"]})
    assert rows[0]["individuals"] == 5 and rows[0]["female"] == 0 and rows[0]["households"] is None


@pytest.mark.parametrize(
    ("raw", "ok"),
    [("admin1,sex", True), ("admin1,admin1", False), ("planet", False), ("", True), (None, True)],
)
def test_parse_dimensions(raw: str | None, ok: bool) -> None:
    if ok:
        service.parse_dimensions(raw)
    else:
        with pytest.raises(ValidationProblem):
            service.parse_dimensions(raw)


@pytest.mark.parametrize(
    "raw",
    [
        {"admin1": "ML0901"},
        {"admin2": "ML09"},
        {"sex": "x"},
        {"age_group": "0_5"},
        {"site": "nope"},
        {"population_group": "refugee"},
    ],
)
def test_parse_filters_rejects(raw: dict) -> None:
    with pytest.raises(ValidationProblem):
        service.parse_filters(raw)


def test_parse_filters_accepts() -> None:
    sid = str(uuid.uuid4())
    got = service.parse_filters({"admin1": "ML09,ML05", "site": sid, "sex": None, "age_group": ""})
    assert got == {"admin1": ["ML09", "ML05"], "site": [sid]}


def test_as_of_in_the_future_is_rejected() -> None:
    with pytest.raises(ValidationProblem):
        service.resolve_as_of(date(2999, 1, 1))
    assert service.resolve_as_of(date(2025, 1, 1)) == date(2025, 1, 1)


def test_suppression_and_hxl_tags() -> None:
    small = PopulationRow(admin1="ML09", **service.counts((1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0)))
    big = PopulationRow(admin1="ML05", **service.counts(VEC))
    public = exports.suppress([small, big], 5, detail=False)
    assert public[0]["suppressed"] and public[0]["individuals"] is None and public[0]["admin1"] == "ML09"
    assert not public[1]["suppressed"] and public[1]["individuals"] == 15
    assert not exports.suppress([small], 5, detail=True)[0]["suppressed"]
    tags = exports.count_tags(["idp"])
    assert tags["individuals"] == "#affected+idps+ind" and tags["female_5_11"] == "#affected+idps+f+children+age5_11"
    assert exports.count_tags(["idp", "repatriate"])["individuals"] == "#affected+ind"
    text = exports.to_csv(public, ["admin1"], hxl=True, population_groups=None)
    header, tag_row, *_ = text.splitlines()
    assert header.startswith("admin1,admin1_name,households") and tag_row.startswith(
        "#adm1+code,#adm1+name,#affected+hh"
    )


def test_svg_charts_are_self_contained() -> None:
    bars = dashboard.bar_chart([("Bamako (ML09)", 120, False), ("Kidal (ML08)", 3, True)], "t")
    assert bars.count('class="bar"') == 2 and "suppressed" in bars and "http://www.w3.org/2000/svg" in bars
    line = dashboard.line_chart(["2025-01", "2025-02"], [("IDPs", [1, 5])], "t")
    assert "<polyline" in line
    assert dashboard.bar_chart([], "t").count("No data") == 1


def test_public_counts_under_the_threshold_are_suppressed() -> None:
    assert dashboard.shown(3, 5) == "&lt;5"
    assert dashboard.shown(4, 5) == "&lt;5"
    assert dashboard.shown(5, 5) == "5"
    assert dashboard.shown(0, 5) == "0"
