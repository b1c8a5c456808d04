"""A city's history labelled at level 1 only trains a model that routes: the department comes
from the catalogue's lead of the predicted level-1 category."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router.catalogue import default_catalogue
from training.datasets import read_rows, write_rows
from training.workflow import evaluate_model, predict_file, train_model

LEVEL1 = ("城乡建设", "环境保护", "交通运输", "教育文体")


@pytest.fixture(scope="module")
def level_one_files(tmp_path_factory) -> dict[str, Path]:
    """Demo appeals relabelled with their level-1 name, departments kept for evaluation."""
    from fixtures.generator import generate_appeals

    catalogue = default_catalogue()
    rows = []
    for row in generate_appeals(3000, seed=21):
        leaf = catalogue.category(row["category_code"])
        assert leaf is not None
        level1 = leaf.path_text.split("/")[0]
        if level1 in LEVEL1:
            lead = catalogue.resolve_label(level1)
            rows.append(
                {
                    "text": row["text"],
                    "label": level1,
                    "department_code": lead.lead_department if lead else "",
                }
            )
    root = tmp_path_factory.mktemp("level1")
    files = {"train": root / "train.csv", "test": root / "test.csv"}
    write_rows(files["train"], ["text", "label", "department_code"], rows[:-100])
    write_rows(files["test"], ["text", "label", "department_code"], rows[-100:])
    return files


@pytest.fixture(scope="module")
def level_one_model(level_one_files, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "level1"
    train_model(
        [level_one_files["train"]], text_column="text", label_column="label", out=out, seed=0
    )
    return out


def test_level_one_categories_have_a_lead_department() -> None:
    catalogue = default_catalogue()
    for name in LEVEL1:
        category = catalogue.resolve_label(name)
        assert category is not None and category.level == 1
        assert category.lead_department, name


def test_a_level_one_model_predicts_a_department_from_the_catalogue(
    level_one_model, level_one_files, tmp_path
) -> None:
    meta = json.loads((level_one_model / "metadata.json").read_text(encoding="utf-8"))
    assert meta["label_kind"] == "taxonomy" and meta["depth"] == 1
    assert meta["departments"] is None  # nothing learned: the catalogue decides
    out = tmp_path / "pred.csv"
    predict_file(
        model_dir=level_one_model,
        input_path=level_one_files["test"],
        text_column="text",
        output_path=out,
    )
    _, rows = read_rows(out)
    catalogue = default_catalogue()
    for row in rows:
        category = catalogue.category(row["category_code"])
        assert category is not None and category.level == 1
        assert row["department_code"] == category.lead_department


def test_evaluation_reports_the_routed_department_of_a_level_one_model(
    level_one_model, level_one_files
) -> None:
    report = evaluate_model(
        model_dir=level_one_model,
        data=[level_one_files["test"]],
        text_column="text",
        label_column="label",
        department_column="department_code",
    )
    routed = report["metrics"]["routed_department"]
    assert routed["rows"] == 100
    assert routed["from_catalogue"] == 1.0
    # the gold department is the level-1 lead, so a right level-1 category routes right
    assert routed["accuracy"] == pytest.approx(report["metrics"]["levels"][0]["accuracy"])
    assert routed["accuracy"] > 0.8


def test_a_level_one_route_names_the_lead_department(level_one_model) -> None:
    from classifier import load_model
    from router.routing import route

    model = load_model(level_one_model)
    suggestion = model.suggest("小区门口的马路上公交站台被拆了，公交线路也改了，出行很不方便")
    decision = route(catalogue=default_catalogue(), suggestion=suggestion, text="")
    assert decision.category_code is not None and len(decision.category_code) == 2
    assert decision.department_code is not None
