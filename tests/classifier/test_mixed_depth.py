"""Rows labelled only at level 1 beside leaf-labelled rows (the default model's recipe): they teach
the root only, never a deeper node nor the department model; `calibrate_on` picks the rows the
temperatures are fitted on."""

from __future__ import annotations

import numpy as np
import pytest

from classifier import DatasetError, HotlineClassifier

MARKER = "蜂鸟计划"  # a word only the level-1-only rows contain


def _mixed(make_corpus):
    texts, labels, departments = make_corpus(300, seed=3, partial_every=0)
    # level-1-only rows (as the real messages are), no department, with a word of their own
    extra = [f"{MARKER}的事情，{t}" for t in texts[:60]]
    extra_labels = [label.split("/")[0] for label in labels[:60]]
    return (
        texts + extra,
        labels + extra_labels,
        departments + [None] * len(extra),
        [False] * len(texts) + [True] * len(extra),
    )


def _feature_columns(model: HotlineClassifier, word: str) -> set[int]:
    return {c for c in range(model.features_.n_features) if word in model.features_.name(c)}


def test_level_one_rows_train_the_root_only(make_corpus):
    texts, labels, departments, _ = _mixed(make_corpus)
    model = HotlineClassifier(random_state=0, stacking=False).fit(texts, labels, departments)
    columns = _feature_columns(model, "蜂鸟")
    assert columns, "the marker must be a feature"
    used_by = {
        parent for parent, node in model.nodes_.items() if columns & set(node.features.tolist())
    }
    assert used_by == {""}
    department_node = model.department_node_
    assert not columns & set(department_node.features.tolist())
    # every prediction still reaches a leaf
    assert all(p.count("/") == 2 for p in model.predict(texts[:50]))


def test_department_model_learns_only_from_rows_with_a_department(make_corpus):
    texts, labels, departments, _ = _mixed(make_corpus)
    model = HotlineClassifier(random_state=0, stacking=False).fit(texts, labels, departments)
    assert set(model.departments_) == {d for d in departments if d}


def test_calibrate_on_fits_the_level_one_temperature_on_the_marked_rows(make_corpus):
    texts, labels, departments, real = _mixed(make_corpus)
    # many marked rows, so that the held-out slice has enough of them
    texts, labels = texts + texts[-60:] * 4, labels + labels[-60:] * 4
    departments, real = departments + [None] * 240, real + [True] * 240
    params = {"random_state": 0, "stacking": False, "calibration_fraction": 0.4}
    plain = HotlineClassifier(**params).fit(texts, labels, departments)
    marked = HotlineClassifier(**params).fit(texts, labels, departments, calibrate_on=real)
    # same held-out rows and models: only the level-1 temperature's rows differ
    assert marked.temperatures_[0] != pytest.approx(plain.temperatures_[0])
    assert marked.temperatures_[2] == pytest.approx(plain.temperatures_[2])
    assert np.isfinite(list(marked.temperatures_.values())).all()


def test_calibrate_on_must_match_the_rows(make_corpus):
    texts, labels, departments, real = _mixed(make_corpus)
    with pytest.raises(DatasetError, match="calibrate_on"):
        HotlineClassifier(random_state=0).fit(texts, labels, departments, calibrate_on=real[:-1])
