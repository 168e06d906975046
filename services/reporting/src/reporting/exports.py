"""Population exports: CSV, HXL-tagged CSV (HDX) and JSON, with small-cell suppression.

Disclosure rule: a caller holding `households:pii` or `admin` has detail rights and gets every
figure; for anyone else a row with 1..threshold-1 individuals has all its counts blanked and
`suppressed` set (threshold `DTM_SUPPRESSION_THRESHOLD`, default 5).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from dtm_shared.auth import Principal
from dtm_shared.events.common import AGE_BRACKETS
from reporting.schemas import Counts, PopulationRow

COUNT_FIELDS = tuple(Counts.model_fields)

DIMENSION_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "admin1": [("admin1", "#adm1+code"), ("admin1_name", "#adm1+name")],
    "admin2": [("admin2", "#adm2+code"), ("admin2_name", "#adm2+name")],
    "admin3": [("admin3", "#adm3+code"), ("admin3_name", "#adm3+name")],
    "site": [("site", "#loc+id"), ("site_code", "#loc+code"), ("site_name", "#loc+name")],
    "population_group": [("population_group", "#population+type")],
    "displacement_reason": [("displacement_reason", "#cause+displacement")],
    "origin_admin1": [("origin_admin1", "#adm1+origin+code"), ("origin_admin1_name", "#adm1+origin+name")],
    "country_of_asylum": [("country_of_asylum", "#country+asylum+code")],
    "sex": [("sex", "#meta+sex")],
    "age_group": [("age_group", "#meta+age_group")],
}

AGE_ATTRIBUTES = {
    "0_4": "+infants+age0_4",
    "5_11": "+children+age5_11",
    "12_17": "+adolescents+age12_17",
    "18_59": "+adults+age18_59",
    "60_plus": "+elderly+age60_plus",
}
GROUP_ATTRIBUTES = {"idp": "+idps", "idp_returnee": "+returnees", "repatriate": "+repatriates"}


def count_tags(population_groups: Sequence[str] | None) -> dict[str, str]:
    """HXL tags of the count columns; filtered to one population group they carry its attribute
    (`#affected+idps+ind`)."""
    group = GROUP_ATTRIBUTES.get(population_groups[0], "") if population_groups and len(population_groups) == 1 else ""
    tags = {
        "households": f"#affected{group}+hh",
        "individuals": f"#affected{group}+ind",
        "female": f"#affected{group}+f+ind",
        "male": f"#affected{group}+m+ind",
    }
    for b in AGE_BRACKETS:
        tags[f"female_{b}"] = f"#affected{group}+f{AGE_ATTRIBUTES[b]}"
        tags[f"male_{b}"] = f"#affected{group}+m{AGE_ATTRIBUTES[b]}"
    return tags


def has_detail_rights(principal: Principal) -> bool:
    return principal.has("households:pii")  # `has` is also true for `admin`


def suppress(rows: Sequence[PopulationRow], threshold: int, detail: bool) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        data = row.model_dump(mode="json")
        small = 0 < row.individuals < threshold
        data["suppressed"] = bool(small and not detail)
        if data["suppressed"]:
            for f in COUNT_FIELDS:
                data[f] = None
        out.append(data)
    return out


def columns(dims: Sequence[str]) -> list[tuple[str, str]]:
    cols = [c for d in dims for c in DIMENSION_COLUMNS[d]]
    return cols


def to_csv(
    rows: Sequence[dict[str, Any]], dims: Sequence[str], hxl: bool, population_groups: Sequence[str] | None
) -> str:
    dim_cols = columns(dims)
    tags = count_tags(population_groups)
    header = [c for c, _ in dim_cols] + list(COUNT_FIELDS) + ["suppressed"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    if hxl:
        writer.writerow([t for _, t in dim_cols] + [tags[f] for f in COUNT_FIELDS] + ["#meta+suppressed"])
    for r in rows:
        writer.writerow(
            [("" if r.get(c) is None else r[c]) for c, _ in dim_cols]
            + [("" if r.get(f) is None else r[f]) for f in COUNT_FIELDS]
            + ["yes" if r["suppressed"] else "no"]
        )
    return buf.getvalue()
