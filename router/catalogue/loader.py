"""Read and validate the reference CSVs; every problem names its file, line and field."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from router.catalogue.catalogue import Catalogue
from router.catalogue.entries import (
    APPEAL_TYPES,
    DEADLINE_UNITS,
    DELIVERY_MODES,
    DEPARTMENT_KINDS,
    HANDLING_SCOPES,
    LEAD_RULES,
    PLACE_KINDS,
    PRIORITIES,
    Category,
    Department,
    Place,
)
from router.errors import CatalogueError

ENV_DIR = "HOTLINE_CATALOGUE_DIR"
MAX_CODE_LENGTH = 16

CATEGORY_FIELDS = (
    "code",
    "name",
    "level",
    "parent_code",
    "lead_department",
    "assisting_departments",
    "handling_scope",
    "appeal_types",
    "deadline_value",
    "deadline_unit",
    "priority",
    "urgent_keywords",
)
OPTIONAL_CATEGORY_FIELDS = ("lead_rule",)
"""Read when present; catalogues written before the column existed still load."""
DEPARTMENT_FIELDS = ("code", "name", "kind", "parent_code", "phone", "delivery", "webhook_url")
GAZETTEER_FIELDS = ("name", "kind", "street_code", "district_code")
_CODE = re.compile(r"^[A-Za-z0-9_\-.]+$")


class _Problems:
    """Collects validation problems; raises one CatalogueError listing the first few."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: Path, line: int, field: str, message: str) -> None:
        self.items.append(f"{path}, line {line}, field '{field}': {message}")

    def raise_if_any(self) -> None:
        if not self.items:
            return
        first = self.items[0]
        more = len(self.items) - 1
        detail = f"invalid reference data: {first}" + (
            f" (and {more} more problems)" if more else ""
        )
        raise CatalogueError(detail, problems=list(self.items))


def _rows(path: Path, fields: tuple[str, ...], problems: _Problems) -> Iterator[tuple[int, dict]]:
    if not path.is_file():
        raise CatalogueError(f"invalid reference data: {path}: file not found")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in fields if f not in (reader.fieldnames or [])]
        if missing:
            problems.add(path, 1, missing[0], "missing column in the header")
            problems.raise_if_any()
        for row in reader:
            if None in row:
                problems.add(path, reader.line_num, "-", "more values than columns")
                continue
            yield reader.line_num, {k: (v or "").strip() for k, v in row.items()}


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split("|") if part.strip())


def _check_code(value: str, path: Path, line: int, field: str, problems: _Problems) -> bool:
    if not value:
        problems.add(path, line, field, "is empty")
        return False
    if len(value) > MAX_CODE_LENGTH or not _CODE.match(value):
        problems.add(path, line, field, f"{value!r} is not a code (<= 16 of A-Z a-z 0-9 _ - .)")
        return False
    return True


def _load_departments(path: Path, problems: _Problems) -> dict[str, tuple[int, Department]]:
    found: dict[str, tuple[int, Department]] = {}
    for line, row in _rows(path, DEPARTMENT_FIELDS, problems):
        code = row["code"]
        if not _check_code(code, path, line, "code", problems):
            continue
        if code in found:
            problems.add(
                path, line, "code", f"duplicate code {code!r} (first on line {found[code][0]})"
            )
            continue
        if not row["name"]:
            problems.add(path, line, "name", "is empty")
        if row["kind"] not in DEPARTMENT_KINDS:
            problems.add(path, line, "kind", f"{row['kind']!r} is not one of {DEPARTMENT_KINDS}")
        delivery = row["delivery"] or "queue"
        if delivery not in DELIVERY_MODES:
            problems.add(path, line, "delivery", f"{delivery!r} is not one of {DELIVERY_MODES}")
        url = row["webhook_url"]
        if delivery == "webhook" and not url.startswith(("http://", "https://")):
            problems.add(path, line, "webhook_url", "delivery 'webhook' needs an http(s) URL")
        found[code] = (
            line,
            Department(
                code=code,
                name=row["name"],
                kind=row["kind"],
                parent_code=row["parent_code"] or None,
                phone=row["phone"],
                webhook_url=url,
                delivery=delivery,
            ),
        )
    for code, (line, dept) in found.items():
        parent = dept.parent_code
        if parent is None:
            if dept.kind != "government":
                problems.add(path, line, "parent_code", f"{code!r} has no parent")
            continue
        if parent not in found:
            problems.add(path, line, "parent_code", f"unknown department {parent!r}")
        elif dept.kind == "street" and found[parent][1].kind != "district":
            problems.add(path, line, "parent_code", f"street {code!r} must belong to a district")
    return found


def _load_categories(
    path: Path, departments: dict[str, tuple[int, Department]], problems: _Problems
) -> list[Category]:
    raw: dict[str, tuple[int, dict]] = {}
    for line, row in _rows(path, CATEGORY_FIELDS, problems):
        code = row["code"]
        if not _check_code(code, path, line, "code", problems):
            continue
        if code in raw:
            problems.add(
                path, line, "code", f"duplicate code {code!r} (first on line {raw[code][0]})"
            )
            continue
        raw[code] = (line, row)
        if not row["name"]:
            problems.add(path, line, "name", "is empty")
        if row["level"] not in ("1", "2", "3"):
            problems.add(path, line, "level", f"{row['level']!r} is not 1, 2 or 3")
            continue
        leaf = row["level"] == "3"
        for field in ("lead_department", *(["assisting_departments"] if leaf else [])):
            for dept in _split(row[field]):
                if dept not in departments:
                    problems.add(path, line, field, f"unknown department {dept!r}")
        rule = row.get("lead_rule", "")
        if rule and rule.split(":", 1)[0] not in LEAD_RULES:
            problems.add(path, line, "lead_rule", f"{rule!r} is not one of {LEAD_RULES}")
        elif rule and not row["lead_department"] and not leaf:
            problems.add(path, line, "lead_rule", "names a rule but there is no lead department")
        if not leaf:
            continue
        if not row["lead_department"]:
            problems.add(path, line, "lead_department", "a leaf category needs a lead department")
        if row["handling_scope"] not in HANDLING_SCOPES:
            problems.add(
                path,
                line,
                "handling_scope",
                f"{row['handling_scope']!r} is not one of {HANDLING_SCOPES}",
            )
        types = _split(row["appeal_types"])
        if not types:
            problems.add(
                path, line, "appeal_types", "a leaf category needs at least one appeal type"
            )
        for t in types:
            if t not in APPEAL_TYPES:
                problems.add(path, line, "appeal_types", f"{t!r} is not one of {APPEAL_TYPES}")
        value = row["deadline_value"]
        if not value.isdigit() or int(value) <= 0:
            problems.add(path, line, "deadline_value", f"{value!r} is not a positive whole number")
        if row["deadline_unit"] not in DEADLINE_UNITS:
            problems.add(
                path,
                line,
                "deadline_unit",
                f"{row['deadline_unit']!r} is not one of {DEADLINE_UNITS}",
            )
        if row["priority"] not in PRIORITIES:
            problems.add(path, line, "priority", f"{row['priority']!r} is not one of {PRIORITIES}")

    # Structure: parents exist one level up, sibling names unique, non-leaves have children.
    siblings: dict[tuple[str, str], int] = {}
    has_child: set[str] = set()
    for line, row in raw.values():
        if row["level"] not in ("1", "2", "3"):
            continue
        level, parent = int(row["level"]), row["parent_code"]
        if level == 1:
            if parent:
                problems.add(path, line, "parent_code", "a level-1 category has no parent")
        elif parent not in raw:
            problems.add(path, line, "parent_code", f"unknown category {parent!r}")
            continue
        elif raw[parent][1]["level"] != str(level - 1):
            problems.add(
                path, line, "parent_code", f"{parent!r} is not a level-{level - 1} category"
            )
        has_child.add(parent)
        key = (parent, row["name"])
        if key in siblings:
            problems.add(
                path, line, "name", f"{row['name']!r} repeats a sibling (line {siblings[key]})"
            )
        siblings[key] = line
    for code, (line, row) in raw.items():
        if row["level"] in ("1", "2") and code not in has_child:
            problems.add(path, line, "code", f"category {code!r} has no children")
    problems.raise_if_any()

    categories: list[Category] = []
    paths: dict[str, tuple[str, ...]] = {}

    def path_of(code: str) -> tuple[str, ...]:
        if code not in paths:
            row = raw[code][1]
            parent = row["parent_code"]
            paths[code] = (*(path_of(parent) if parent else ()), row["name"])
        return paths[code]

    for code, (_line, row) in raw.items():
        leaf = row["level"] == "3"
        categories.append(
            Category(
                code=code,
                name=row["name"],
                level=int(row["level"]),
                parent_code=row["parent_code"] or None,
                path=path_of(code),
                lead_department=row["lead_department"] or None,
                assisting_departments=_split(row["assisting_departments"]),
                handling_scope=row["handling_scope"] or "city",
                appeal_types=_split(row["appeal_types"]),
                deadline_value=int(row["deadline_value"]) if leaf else 0,
                deadline_unit=row["deadline_unit"] or "working_days",
                priority=row["priority"] or "normal",
                urgent_keywords=_split(row["urgent_keywords"]),
                lead_rule=row.get("lead_rule", ""),
            )
        )
    return sorted(categories, key=lambda c: c.code)


def _load_places(
    path: Path, departments: dict[str, tuple[int, Department]], problems: _Problems
) -> list[Place]:
    places: list[Place] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, GAZETTEER_FIELDS, problems):
        name = row["name"]
        if len(name) < 2:
            problems.add(path, line, "name", f"{name!r} is too short to match (2+ characters)")
            continue
        if name in seen:
            problems.add(
                path, line, "name", f"duplicate place {name!r} (first on line {seen[name]})"
            )
            continue
        seen[name] = line
        if row["kind"] not in PLACE_KINDS:
            problems.add(path, line, "kind", f"{row['kind']!r} is not one of {PLACE_KINDS}")
        district, street = row["district_code"], row["street_code"]
        if district not in departments or departments[district][1].kind != "district":
            problems.add(path, line, "district_code", f"{district!r} is not a district")
            continue
        if street not in departments or departments[street][1].kind != "street":
            problems.add(path, line, "street_code", f"{street!r} is not a street")
            continue
        if departments[street][1].parent_code != district:
            problems.add(
                path, line, "street_code", f"street {street!r} is not in district {district!r}"
            )
            continue
        places.append(
            Place(name=name, kind=row["kind"], street_code=street, district_code=district)
        )
    return places


def _load_keywords(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [s.strip() for s in lines if s.strip() and not s.lstrip().startswith("#")]


def load_catalogue(directory: str | Path) -> Catalogue:
    """Load and validate the reference data in `directory`."""
    directory = Path(directory)
    problems = _Problems()
    departments = _load_departments(directory / "departments.csv", problems)
    problems.raise_if_any()
    categories = _load_categories(directory / "categories.csv", departments, problems)
    places = _load_places(directory / "gazetteer.csv", departments, problems)
    problems.raise_if_any()
    if not any(c.is_leaf for c in categories):
        raise CatalogueError(
            f"invalid reference data: {directory / 'categories.csv'}: no leaf categories"
        )
    return Catalogue(
        categories,
        (d for _line, d in departments.values()),
        places,
        _load_keywords(directory / "urgent_keywords.txt"),
    )


_default_directory: Path | None = None


def set_default_directory(directory: str | Path, *, replace: bool = True) -> None:
    """Name the reference-data folder `default_catalogue()` loads (the application's choice: the
    service's `HOTLINE_CATALOGUE_DIR` setting, or the folder `fixtures` ships). With
    `replace=False` a folder named before is kept."""
    global _default_directory
    if _default_directory is not None and not replace:
        return
    _default_directory = Path(directory)


def default_catalogue() -> Catalogue:
    """The process's catalogue: the folder in $HOTLINE_CATALOGUE_DIR, else the one named by
    `set_default_directory`, loaded once per folder.

    Raises:
        CatalogueError: no folder was named, or its data is invalid.
    """
    override = os.environ.get(ENV_DIR)
    directory = Path(override) if override else _default_directory
    if directory is None:
        raise CatalogueError(
            f"no reference-data folder: set {ENV_DIR} or call "
            "router.catalogue.set_default_directory()"
        )
    return _cached(directory.resolve())


@lru_cache(maxsize=4)
def _cached(directory: Path) -> Catalogue:
    return load_catalogue(directory)
