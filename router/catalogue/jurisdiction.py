"""Jurisdiction: find the most specific place named in a text and the street responsible for it.

Places are gazetteer entries (compounds, landmarks, roads), street/town names ("天顶街道",
"安沙镇", also with their district prefix) and district names ("A3区", "A7县", "A9市").
Specificity ranks compound = landmark > road > street > district; ties go to the longer name,
then to the earlier mention. When the text names a district explicitly, places of other districts
are ignored (a road name can exist in several districts; the district the citizen wrote wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from router.catalogue.entries import Department, Place, PlaceMatch

_RANK = {"compound": 3, "landmark": 3, "road": 2, "street": 1, "district": 0}
_STREET_SUFFIXES = ("街道", "镇", "乡")


@dataclass(frozen=True)
class _Entry:
    name: str
    kind: str
    street_code: str | None
    district_code: str


class Gazetteer:
    """Scans a text for known place names (an index on the first two characters of each name)."""

    def __init__(self, places: Iterable[Place], departments: Iterable[Department]) -> None:
        entries: list[_Entry] = []
        departments = list(departments)
        for dept in departments:
            if dept.kind == "district":
                entries.append(_Entry(dept.name, "district", None, dept.code))
        by_code = {d.code: d for d in departments}
        for dept in departments:
            if dept.kind != "street" or not dept.parent_code:
                continue
            district = by_code.get(dept.parent_code)
            short = dept.name
            if district and short.startswith(district.name):
                short = short[len(district.name) :]
            for name in {dept.name, short}:
                entries.append(_Entry(name, "street", dept.code, dept.parent_code))
        for place in places:
            entries.append(_Entry(place.name, place.kind, place.street_code, place.district_code))
        self._index: dict[str, list[_Entry]] = {}
        for entry in entries:
            if len(entry.name) >= 2:
                self._index.setdefault(entry.name[:2], []).append(entry)
        for bucket in self._index.values():
            bucket.sort(key=lambda e: -len(e.name))

    def find_all(self, text: str) -> list[tuple[int, _Entry]]:
        """Every (position, entry) found in `text`, longest name first at each position."""
        found: list[tuple[int, _Entry]] = []
        index = self._index
        for i in range(len(text) - 1):
            bucket = index.get(text[i : i + 2])
            if not bucket:
                continue
            for entry in bucket:
                if text.startswith(entry.name, i):
                    found.append((i, entry))
        return found

    def resolve(self, text: str) -> PlaceMatch | None:
        """The most specific place named in `text`, or None when nothing is recognised."""
        if not text:
            return None
        found = self.find_all(text)
        if not found:
            return None
        districts = {e.district_code for _, e in found if e.kind == "district"}
        candidates = found
        if districts:
            consistent = [(i, e) for i, e in found if e.district_code in districts]
            candidates = consistent or found
        pos, best = max(candidates, key=lambda ie: (_RANK[ie[1].kind], len(ie[1].name), -ie[0]))
        del pos
        return PlaceMatch(
            name=best.name,
            kind=best.kind,
            street_code=best.street_code,
            district_code=best.district_code,
        )
