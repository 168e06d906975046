"""Mali admin P-codes (OCHA COD-AB, 2021), loaded once per process from `reference/`.

Source and licence: `data/SOURCE.md` beside this module ("OCHA / Government of Mali (COD-AB)", CC BY-IGO).
"""

from __future__ import annotations

import csv
import os
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

COUNTRY = "MLI"


@dataclass(frozen=True)
class AdminArea:
    level: int
    pcode: str
    name: str
    parent_pcode: str | None

    @property
    def admin1(self) -> str:
        return self.pcode[:4]

    @property
    def admin2(self) -> str | None:
        return self.pcode[:6] if self.level >= 2 else None


def fold(text: str) -> str:
    """Lower-case without accents, for accent-insensitive search."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).casefold()


def _reference_file() -> Path:
    env = os.environ.get("DTM_PCODES_FILE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / "data" / "mali_pcodes.csv"


class Gazetteer:
    def __init__(self, areas: list[AdminArea]) -> None:
        self.by_code = {a.pcode: a for a in areas}
        self.areas = areas

    def get(self, pcode: str) -> AdminArea | None:
        return self.by_code.get(pcode)

    def is_level(self, pcode: str, level: int) -> bool:
        area = self.by_code.get(pcode)
        return area is not None and area.level == level

    def name(self, pcode: str | None) -> str | None:
        area = self.by_code.get(pcode) if pcode else None
        return area.name if area else None

    def ancestors(self, pcode: str) -> dict[int, AdminArea]:
        out: dict[int, AdminArea] = {}
        area = self.by_code.get(pcode)
        while area is not None:
            out[area.level] = area
            area = self.by_code.get(area.parent_pcode) if area.parent_pcode else None
        return out

    def search(self, query: str | None = None, level: int | None = None, parent: str | None = None) -> list[AdminArea]:
        q = fold(query) if query else None
        return [
            a
            for a in self.areas
            if (level is None or a.level == level)
            and (parent is None or a.parent_pcode == parent)
            and (q is None or q in fold(a.name) or a.pcode.lower().startswith(q))
        ]


@cache
def gazetteer() -> Gazetteer:
    with _reference_file().open(encoding="utf-8") as f:
        areas = [
            AdminArea(
                int(r["level"]),
                r["pcode"],
                r["name"],
                None if r["parent_pcode"] == COUNTRY else r["parent_pcode"],
            )
            for r in csv.DictReader(f)
        ]
    return Gazetteer(areas)
