"""The default model recipe: synthetic leaf rows with departments, real level-1 rows without."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.default_model import (
    default_training_set,
    real_training_set,
    train_default_model,
)


def test_training_set_mixes_leaf_rows_with_departments_and_real_level_one_rows() -> None:
    rows = default_training_set(synthetic_count=300, real_limit=100)
    assert rows.sources["synthetic"] == 300
    assert 0 < rows.sources["real_messages"] <= 100 and 0 < rows.sources["real_titles"] <= 100
    for path, dept, real in zip(rows.paths, rows.departments, rows.real, strict=True):
        if real:
            assert "/" not in path and dept is None
        else:
            assert path.count("/") == 2 and dept


def test_real_rows_accept_level_one_names_and_codes() -> None:
    rows = real_training_set(messages=(["小区停车位被占"], ["城乡建设"]), titles=(["公交"], ["06"]))
    assert rows.paths == ["城乡建设", "交通运输"]
    assert rows.real == [True, True]


@pytest.fixture(scope="module")
def default_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("models") / "default"
    train_default_model(out, synthetic_count=1500, real_limit=400)
    return out


def test_default_model_predicts_leaves_and_departments_and_records_its_recipe(
    default_model: Path,
) -> None:
    from classifier import load_model

    meta = json.loads((default_model / "metadata.json").read_text(encoding="utf-8"))
    assert meta["label_kind"] == "taxonomy" and meta["depth"] == 3
    assert meta["default_model"]["sources"]["synthetic"] == 1500
    assert meta["departments"]
    model = load_model(default_model)
    s = model.suggest("我们小区楼下的饭店每天晚上油烟很大，噪音扰民，希望有关部门管一管")
    assert s.label.count("/") == 2 and s.department is not None
    assert set(model.temperatures_) == {0, 1, 2}
