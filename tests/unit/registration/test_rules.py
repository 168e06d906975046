"""Pure rules of the registration service (no database)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from dtm_shared.auth import Principal
from dtm_shared.problems import PreconditionFailed, PreconditionRequired, ValidationProblem
from registration import service
from registration.models import Household
from registration.repository import SiteInfo
from registration.schemas import HouseholdCreate
from registration.settings import RegistrationSettings


def _data(**kw) -> HouseholdCreate:
    base = {
        "population_group": "idp",
        "location_pcode": "ML090106",
        "origin_pcode": "ML0601",
        "displacement_reason": "armed_conflict",
        "displacement_date": "2023-06-10",
        "registration_date": "2024-02-01",
        "members": [
            {
                "given_name": "A",
                "family_name": "B",
                "sex": "female",
                "date_of_birth": "1980-01-01",
                "relationship": "head",
            }
        ],
    }
    base.update(kw)
    return HouseholdCreate.model_validate(base)


def _errors(data: HouseholdCreate, on: date = date(2024, 6, 1)) -> list[list]:
    errors = service.Errors(())
    service.check_household(data, errors, on)
    return [e.loc for e in errors.items]


@pytest.mark.parametrize(
    ("on", "age"),
    [(date(2024, 2, 1), 7), (date(2024, 2, 29), 0), (date(2024, 12, 31), 120), (date(2024, 7, 1), 35)],
)
def test_estimated_birth_date_gives_the_age(on: date, age: int) -> None:
    dob = service.estimate_birth_date(on, age)
    completed = on.year - dob.year - ((on.month, on.day) < (dob.month, dob.day))
    assert completed == age and dob < on


def test_valid_household_has_no_errors() -> None:
    assert _errors(_data()) == []


@pytest.mark.parametrize(
    ("patch", "loc"),
    [
        ({"origin_pcode": "ML06"}, ["origin_pcode"]),
        ({"registration_date": "2024-07-01"}, ["registration_date"]),
        ({"displacement_date": "2024-03-01"}, ["displacement_date"]),
        ({"population_group": "idp_returnee"}, ["return_date"]),
        ({"population_group": "idp_returnee", "return_date": "2023-01-01"}, ["return_date"]),
        ({"population_group": "repatriate", "repatriation_date": "2024-01-01"}, ["country_of_asylum"]),
        ({"population_group": "repatriate", "country_of_asylum": "NER"}, ["repatriation_date"]),
        ({"country_of_asylum": "MLI"}, ["country_of_asylum"]),
        ({"country_of_asylum": "QQQ"}, ["country_of_asylum"]),
    ],
)
def test_household_rules(patch: dict, loc: list) -> None:
    assert loc in _errors(_data(**patch))


def test_member_rules() -> None:
    m = {"given_name": "A", "family_name": "B", "sex": "male", "relationship": "child"}
    head = {**m, "relationship": "head", "date_of_birth": "1980-01-01"}
    assert ["members"] in _errors(_data(members=[{**m, "age_years": 3}]))
    assert ["members"] in _errors(_data(members=[head, head]))
    assert ["members", 1, "date_of_birth"] in _errors(_data(members=[head, m]))
    assert ["members", 1, "date_of_birth"] in _errors(_data(members=[head, {**m, "date_of_birth": "2024-03-01"}]))
    assert ["members", 0, "id_document_number"] in _errors(_data(members=[{**head, "id_document_type": "nina"}]))
    assert _errors(_data(members=[head, {**m, "age_years": 0}])) == []


def test_location_resolution() -> None:
    import uuid

    open_site, closed_site = uuid.uuid4(), uuid.uuid4()
    sites = {open_site: SiteInfo("ML090101", "open"), closed_site: SiteInfo("ML090101", "closed")}

    def resolve(site, pcode):
        errors = service.Errors(("body",))
        return service.resolve_location(site, pcode, sites, errors), [e.loc for e in errors.items]

    assert resolve(open_site, None) == ("ML090101", [])
    assert resolve(open_site, "ML090101") == ("ML090101", [])
    assert resolve(open_site, "ML090106")[1] == [["body", "location_pcode"]]
    assert resolve(closed_site, None)[1] == [["body", "site_id"]]
    assert resolve(uuid.uuid4(), None)[1] == [["body", "site_id"]]
    assert resolve(None, "ML0901")[1] == [["body", "location_pcode"]]
    assert resolve(None, None)[1] == [["body", "location_pcode"]]
    assert resolve(None, "ML090106") == ("ML090106", [])


def test_if_match() -> None:
    h = Household(version=3)
    service.check_version(h, '"3"', required=True)
    service.check_version(h, 'W/"3"', required=True)
    service.check_version(h, "*", required=True)
    service.check_version(h, None, required=False)
    with pytest.raises(PreconditionRequired):
        service.check_version(h, None, required=True)
    with pytest.raises(PreconditionFailed):
        service.check_version(h, '"2"', required=False)


def test_cursor_round_trip_and_garbage() -> None:
    assert service.decode_cursor(service.encode_cursor([42]), (int,)) == [42]
    for garbage in ("\xff", service.encode_cursor(["42"]), service.encode_cursor([42, 1])):
        with pytest.raises(ValidationProblem):
            service.decode_cursor(garbage, (int,))


def test_pii_visibility_and_numbers() -> None:
    h = Household(registered_by_org="DNDS")
    assert service.may_see_pii(Principal("u", "DNDS", frozenset()), h)
    assert not service.may_see_pii(Principal("u", "NRC", frozenset({"households:read"})), h)
    assert service.may_see_pii(Principal("u", "NRC", frozenset({"households:pii"})), h)
    assert service.may_see_pii(Principal("u", "NRC", frozenset({"admin"})), h)
    assert service.registration_number(RegistrationSettings(), 123) == "MLI-HH-000123"
    assert service.registration_number(RegistrationSettings(), 1234567) == "MLI-HH-1234567"


def test_future_is_relative_to_today() -> None:
    tomorrow = service.today() + timedelta(days=1)
    assert ["registration_date"] in _errors(_data(registration_date=tomorrow.isoformat()), on=service.today())


def test_gc_pauses_nest_and_resume() -> None:
    import gc

    from registration.runtime import paused_gc

    assert gc.isenabled()
    with paused_gc():
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block still runs
    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        raise RuntimeError
    assert gc.isenabled()
