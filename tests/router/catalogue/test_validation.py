"""The loader rejects broken reference data with a message naming file, line and field."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from fixtures import DATA_DIR
from router.catalogue import load_catalogue
from router.errors import CatalogueError

Rows = list[dict[str, str]]


@pytest.fixture()
def data_copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    target.mkdir()
    for name in ("categories.csv", "departments.csv", "gazetteer.csv", "urgent_keywords.txt"):
        shutil.copy(DATA_DIR / name, target / name)
    return target


def _edit(path: Path, change: Callable[[Rows], None]) -> None:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = list(reader)
    change(rows)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _first(rows: Rows, **match: str) -> int:
    return next(i for i, r in enumerate(rows) if all(r[k] == v for k, v in match.items()))


def _line(index: int) -> str:
    return f"line {index + 2}"  # header is line 1


def _reject(directory: Path, *fragments: str) -> None:
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(directory)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message


def test_shipped_copy_loads(data_copy: Path) -> None:
    assert len(load_catalogue(data_copy).leaves()) >= 500


def test_leaf_with_unknown_lead_department_is_rejected(data_copy: Path) -> None:
    index: list[int] = []

    def change(rows: Rows) -> None:
        index.append(_first(rows, level="3"))
        rows[index[0]]["lead_department"] = "no_such_dept"

    _edit(data_copy / "categories.csv", change)
    _reject(data_copy, "categories.csv", _line(index[0]), "'lead_department'", "no_such_dept")


def test_leaf_without_lead_department_is_rejected(data_copy: Path) -> None:
    index: list[int] = []

    def change(rows: Rows) -> None:
        index.append(_first(rows, level="3"))
        rows[index[0]]["lead_department"] = ""

    _edit(data_copy / "categories.csv", change)
    _reject(data_copy, "categories.csv", _line(index[0]), "'lead_department'")


def test_duplicate_category_code_is_rejected(data_copy: Path) -> None:
    def change(rows: Rows) -> None:
        rows[5]["code"] = rows[4]["code"]

    _edit(data_copy / "categories.csv", change)
    _reject(data_copy, "categories.csv", _line(5), "'code'", "duplicate")


@pytest.mark.parametrize("value", ["0", "-3", "abc", ""])
def test_non_positive_deadline_is_rejected(data_copy: Path, value: str) -> None:
    index: list[int] = []

    def change(rows: Rows) -> None:
        index.append(_first(rows, level="3"))
        rows[index[0]]["deadline_value"] = value

    _edit(data_copy / "categories.csv", change)
    _reject(data_copy, "categories.csv", _line(index[0]), "'deadline_value'")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("deadline_unit", "weeks"),
        ("priority", "whenever"),
        ("handling_scope", "province"),
        ("appeal_types", "complaint|praise"),
        ("assisting_departments", "housing|ghost_dept"),
    ],
)
def test_leaf_with_invalid_value_is_rejected(data_copy: Path, field: str, value: str) -> None:
    index: list[int] = []

    def change(rows: Rows) -> None:
        index.append(_first(rows, level="3"))
        rows[index[0]][field] = value

    _edit(data_copy / "categories.csv", change)
    _reject(data_copy, "categories.csv", _line(index[0]), f"'{field}'")


def test_category_with_unknown_parent_is_rejected(data_copy: Path) -> None:
    index: list[int] = []

    def change(rows: Rows) -> None:
        index.append(_first(rows, level="3"))
        rows[index[0]]["parent_code"] = "9999"

    _edit(data_copy / "categories.csv", change)
    _reject(data_copy, "categories.csv", _line(index[0]), "'parent_code'", "9999")


def test_missing_column_is_rejected(data_copy: Path) -> None:
    path = data_copy / "categories.csv"
    text = path.read_text(encoding="utf-8").replace("deadline_unit", "unit", 1)
    path.write_text(text, encoding="utf-8")
    _reject(data_copy, "categories.csv", "line 1", "'deadline_unit'")


def test_department_with_unknown_parent_is_rejected(data_copy: Path) -> None:
    index: list[int] = []

    def change(rows: Rows) -> None:
        index.append(_first(rows, kind="street"))
        rows[index[0]]["parent_code"] = "Z9"

    _edit(data_copy / "departments.csv", change)
    _reject(data_copy, "departments.csv", _line(index[0]), "'parent_code'", "Z9")


def test_duplicate_department_code_is_rejected(data_copy: Path) -> None:
    def change(rows: Rows) -> None:
        rows[3]["code"] = rows[2]["code"]

    _edit(data_copy / "departments.csv", change)
    _reject(data_copy, "departments.csv", _line(3), "'code'", "duplicate")


def test_webhook_delivery_without_url_is_rejected(data_copy: Path) -> None:
    def change(rows: Rows) -> None:
        rows[2]["delivery"] = "webhook"
        rows[2]["webhook_url"] = ""

    _edit(data_copy / "departments.csv", change)
    _reject(data_copy, "departments.csv", _line(2), "'webhook_url'")


def test_place_assigned_to_a_street_of_another_district_is_rejected(data_copy: Path) -> None:
    def change(rows: Rows) -> None:
        rows[0]["district_code"] = "A1" if not rows[0]["street_code"].startswith("A1-") else "A2"

    _edit(data_copy / "gazetteer.csv", change)
    _reject(data_copy, "gazetteer.csv", _line(0), "'street_code'")


def test_place_with_unknown_district_is_rejected(data_copy: Path) -> None:
    def change(rows: Rows) -> None:
        rows[1]["district_code"] = "hotline"

    _edit(data_copy / "gazetteer.csv", change)
    _reject(data_copy, "gazetteer.csv", _line(1), "'district_code'")


def test_missing_file_is_reported_by_name(data_copy: Path) -> None:
    (data_copy / "gazetteer.csv").unlink()
    _reject(data_copy, "gazetteer.csv", "not found")


def test_several_problems_are_counted_in_one_message(data_copy: Path) -> None:
    def change(rows: Rows) -> None:
        for row in rows:
            if row["level"] == "3":
                row["priority"] = "asap"

    _edit(data_copy / "categories.csv", change)
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(data_copy)
    assert "more problems" in str(caught.value)
    assert len(caught.value.extra["problems"]) >= 500


def test_unknown_lead_rule_is_rejected(data_copy: Path) -> None:
    path = data_copy / "categories.csv"
    index = 0

    def change(rows: Rows) -> None:
        nonlocal index
        index = _first(rows, level="3")
        rows[index]["lead_rule"] = "guesswork"

    _edit(path, change)
    _reject(data_copy, "categories.csv", _line(index), "'lead_rule'", "guesswork")


def test_inner_node_with_a_lead_rule_but_no_lead_is_rejected(data_copy: Path) -> None:
    path = data_copy / "categories.csv"
    index = 0

    def change(rows: Rows) -> None:
        nonlocal index
        index = _first(rows, level="1")
        rows[index]["lead_department"] = ""

    _edit(path, change)
    _reject(data_copy, _line(index), "'lead_rule'", "no lead department")


def test_catalogue_without_lead_rule_column_still_loads(data_copy: Path) -> None:
    path = data_copy / "categories.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = [f for f in rows[0] if f != "lead_rule"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    catalogue = load_catalogue(data_copy)
    assert all(c.lead_rule == "" for c in catalogue.categories.values())
    assert catalogue.responsible_department("01") == "housing"
