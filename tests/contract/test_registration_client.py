"""A Python client generated with openapi-python-client from the running registration service's
`/openapi.json` registers, reads and lists households."""

from __future__ import annotations

import importlib
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client_package(processes, tmp_path_factory: pytest.TempPathFactory):
    proc = processes.serve("registration")
    root = tmp_path_factory.mktemp("generated")
    spec = root / "openapi.json"
    spec.write_bytes(httpx.get(proc.base_url + "/openapi.json", timeout=10).content)
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(root / "dtm_registration_client"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module("dtm_registration_client"), proc.base_url, processes.env
    finally:
        sys.path.remove(str(root))


async def test_generated_client_registers_reads_and_lists(client_package) -> None:
    _pkg, base_url, env = client_package
    from dtm_registration_client import AuthenticatedClient
    from dtm_registration_client.api.households import (
        get_household,
        list_households,
        register_household,
        register_households_batch,
    )
    from dtm_registration_client.models import (
        BatchItemStatus,
        DisplacementReason,
        HouseholdBatchCreate,
        HouseholdCreate,
        HouseholdRead,
        MemberCreate,
        PopulationGroup,
        ProblemDetail,
        Relationship,
        Sex,
        SpecificNeed,
    )

    org = f"GEN{uuid.uuid4().hex[:6]}"
    client = AuthenticatedClient(base_url=base_url, token=env.token(org, "households:read", "households:write"))
    import datetime as dt

    def new_household(ext: str) -> HouseholdCreate:
        return HouseholdCreate(
            external_id=ext,
            population_group=PopulationGroup.IDP,
            location_pcode="ML090106",
            origin_pcode="ML0601",
            displacement_reason=DisplacementReason.ARMED_CONFLICT,
            displacement_date=dt.date(2023, 5, 1),
            registration_date=dt.date(2024, 2, 1),
            members=[
                MemberCreate(
                    given_name="Mariam",
                    family_name=f"Sangaré{ext}",
                    sex=Sex.FEMALE,
                    date_of_birth=dt.date(1990, 4, 4),
                    relationship=Relationship.HEAD,
                    specific_needs=[SpecificNeed.SINGLE_PARENT],
                ),
                MemberCreate(
                    given_name="Ali",
                    family_name=f"Sangaré{ext}",
                    sex=Sex.MALE,
                    age_years=4,
                    relationship=Relationship.CHILD,
                ),
            ],
        )

    async with client as c:
        created = await register_household.asyncio_detailed(client=c, body=new_household("g-1"), idempotency_key="k1")
        assert created.status_code == 201, created.content
        household = created.parsed
        assert isinstance(household, HouseholdRead)
        assert household.registration_number.startswith("MLI-HH-")
        assert household.members[1].date_of_birth_estimated is True
        assert household.members[0].specific_needs == [SpecificNeed.SINGLE_PARENT]

        got = await get_household.asyncio(client=c, household_id=household.id)
        assert isinstance(got, HouseholdRead) and got.id == household.id and got.version == 1
        assert got.population_group == PopulationGroup.IDP and got.admin1_pcode == "ML09"

        batch = await register_households_batch.asyncio(
            client=c, body=HouseholdBatchCreate(households=[new_household("g-1"), new_household("g-2")])
        )
        assert [i.status for i in batch.items] == [BatchItemStatus.EXISTING, BatchItemStatus.CREATED]

        page = await list_households.asyncio(
            client=c, registered_by_org=org, population_group=PopulationGroup.IDP, limit=1
        )
        ids = [i.id for i in page.items]
        while page.next_cursor:
            page = await list_households.asyncio(client=c, registered_by_org=org, cursor=page.next_cursor, limit=1)
            ids += [i.id for i in page.items]
        assert ids == [household.id, batch.items[1].household_id]

        bad = new_household("g-3")
        bad.location_pcode = "ML0901"
        refused = await register_household.asyncio_detailed(client=c, body=bad)
        assert refused.status_code == 422
        problem = refused.parsed
        assert isinstance(problem, ProblemDetail) and problem.status == 422
        assert problem.errors[0].loc == ["body", "location_pcode"]
