"""Pure rules of the sites service: ETags, cursors, totals, statuses, committee and site checks."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from dtm_shared.http import check_if_match, decode_cursor, encode_cursor, parse_if_match
from dtm_shared.problems import BadRequest, PreconditionFailed, PreconditionRequired, ValidationProblem
from sites import service
from sites.models import Site
from sites.schemas import AssessmentCreate


def _site(**over) -> Site:
    values = {
        "id": uuid.uuid4(),
        "code": "S-1",
        "name": "n",
        "site_type": "planned_site",
        "location_pcode": "ML090106",
        "opened_on": date(2024, 1, 1),
        "created_by_org": "DNDS",
        **over,
    }
    return Site(**values)


def _assessment(**over) -> AssessmentCreate:
    brackets = dict.fromkeys(service.SEX_AGE_KEYS, 1)  # 10 individuals
    body = {
        "round_number": 1,
        "assessed_on": "2024-05-01",
        "households": 3,
        "individuals": 10,
        "individuals_by_sex_age": brackets,
        "individuals_by_reason": {"armed_conflict": 7, "other": 3},
        **over,
    }
    return AssessmentCreate.model_validate(body)


@pytest.mark.parametrize(
    ("header", "versions"),
    [('"3"', [3]), ('W/"3"', [3]), ("3", [3]), ('"1", "4"', [1, 4]), ("*", None), (None, None)],
)
def test_parse_if_match(header, versions) -> None:
    assert parse_if_match(header) == versions


def test_if_match_outcomes() -> None:
    check_if_match('"2"', 2, required=True)
    check_if_match(None, 2, required=False)
    check_if_match("*", 2, required=True)
    with pytest.raises(PreconditionFailed) as stale:
        check_if_match('"1"', 2, required=True)
    assert stale.value.headers["ETag"] == '"2"'
    with pytest.raises(PreconditionRequired):
        check_if_match(None, 2, required=True)
    with pytest.raises(BadRequest):
        check_if_match('"two"', 2, required=False)


def test_cursor_round_trip_and_refusals() -> None:
    assert decode_cursor(encode_cursor(["ABC-1"]), (str,)) == ["ABC-1"]
    assert decode_cursor(encode_cursor([2, "ML0901"]), (int, str)) == [2, "ML0901"]
    assert decode_cursor(None, (str,)) is None
    for bad in ("%%%", encode_cursor(["a", "b"]), encode_cursor([True]), encode_cursor({"a": 1}), "e30"):
        with pytest.raises(ValidationProblem):
            decode_cursor(bad, (int,))


def test_valid_assessment_has_no_errors() -> None:
    assert service.assessment_errors(_assessment(), _site()) == []


def test_each_wrong_total_is_named() -> None:
    errors = service.assessment_errors(_assessment(individuals=12, households=13), _site())
    fields = [e.loc[-1] for e in errors]
    assert fields == ["individuals_by_sex_age", "individuals_by_reason", "households"]
    assert "add up to 10, not to individuals (12)" in errors[0].msg


def test_dates_and_duplicates() -> None:
    late = (date.today() + timedelta(days=1)).isoformat()
    assert [e.loc[-1] for e in service.assessment_errors(_assessment(assessed_on=late), _site())] == ["assessed_on"]
    early = service.assessment_errors(_assessment(assessed_on="2023-12-31"), _site())
    assert "before the site opened" in early[0].msg
    dup = service.assessment_errors(_assessment(priority_needs=["wash", "wash"], risks=["fire", "fire"]), _site())
    assert [e.loc[-1] for e in dup] == ["priority_needs", "risks"]


def test_empty_site_assessment_is_valid_but_people_need_households() -> None:
    zero = dict.fromkeys(service.SEX_AGE_KEYS, 0)
    empty = _assessment(households=0, individuals=0, individuals_by_sex_age=zero, individuals_by_reason={})
    assert service.assessment_errors(empty, _site()) == []
    assert [e.loc[-1] for e in service.assessment_errors(_assessment(households=0), _site())] == ["households"]


def test_activity_status() -> None:
    today = date(2024, 6, 15)
    assert service.activity_status(date(2024, 7, 1), None, today) == "planned"
    assert service.activity_status(date(2024, 6, 15), None, today) == "ongoing"
    assert service.activity_status(date(2024, 1, 1), date(2024, 6, 15), today) == "ongoing"
    assert service.activity_status(date(2024, 1, 1), date(2024, 6, 14), today) == "ended"


def test_committee_errors() -> None:
    assert service.committee_errors("ML05", ["A", "B"], 2) == []
    assert [e.loc[-1] for e in service.committee_errors("ML0501", ["A"], 1)] == ["admin1_pcode"]
    assert [e.loc[-1] for e in service.committee_errors("ML05", ["A", "A"], 2)] == ["member_organizations", "quorum"]


def test_site_errors() -> None:
    ok = {"location_pcode": "ML090106", "latitude": 12.6, "longitude": -8.0, "opened_on": date(2024, 1, 1)}
    assert service.site_errors(**ok) == []
    assert [e.loc[-1] for e in service.site_errors(**{**ok, "location_pcode": "ML09"})] == ["location_pcode"]
    assert [e.loc[-1] for e in service.site_errors(**{**ok, "longitude": None})] == ["latitude"]
    assert [e.loc[-1] for e in service.site_errors(**{**ok, "latitude": 30.0, "longitude": 10.0})] == [
        "latitude",
        "longitude",
    ]
    assert [e.loc[-1] for e in service.site_errors(**ok, closed_on=date(2023, 1, 1))] == ["opened_on"]


def test_admin_areas_search_and_pages() -> None:
    found = service.list_admin_areas(level=2, parent=None, q="djenne", limit=10, cursor=None)
    assert [a.name for a in found.items] == ["Djenné"]
    first = service.list_admin_areas(level=1, parent=None, q=None, limit=4, cursor=None)
    rest = service.list_admin_areas(level=1, parent=None, q=None, limit=100, cursor=first.next_cursor)
    assert [a.pcode for a in first.items + rest.items] == [f"ML{n:02d}" for n in range(1, 11)]
    assert rest.next_cursor is None
    with pytest.raises(ValidationProblem):
        service.list_admin_areas(level=None, parent="ML77", q=None, limit=10, cursor=None)
