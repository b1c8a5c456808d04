from __future__ import annotations

import json

import pytest

from classifier import ArtifactError, HotlineClassifier, load_metadata, load_model, save_model
from classifier.artifact import METADATA_FILE, MODEL_FILE


@pytest.fixture
def saved(tmp_path, fitted):
    return save_model(fitted, tmp_path / "model", metadata_extra={"metrics": {"accuracy": 0.9}})


def test_round_trip_keeps_predictions(saved, fitted, corpus):
    texts, _, _ = corpus
    loaded = load_model(saved)
    assert list(loaded.predict(texts[:20])) == list(fitted.predict(texts[:20]))


def test_metadata_records_provenance(saved, fitted):
    meta = load_metadata(saved)
    assert meta["library_versions"]["scikit-learn"]
    assert meta["data_fingerprint"] == fitted.data_fingerprint_
    assert meta["labels"] == list(fitted.classes_)
    assert meta["metrics"] == {"accuracy": 0.9}
    assert "git_sha" in meta and meta["model_sha256"].startswith("sha256:")


def test_refuses_a_missing_directory(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_model(tmp_path / "nope")


def test_refuses_a_truncated_model_file(saved):
    path = saved / MODEL_FILE
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="checksum"):
        load_model(saved)


def test_refuses_other_library_versions(saved):
    meta = json.loads((saved / METADATA_FILE).read_text(encoding="utf-8"))
    meta["library_versions"]["scikit-learn"] = "0.0.1"
    (saved / METADATA_FILE).write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ArtifactError, match=r"scikit-learn 0\.0\.1"):
        load_model(saved)


def test_refuses_corrupt_metadata(saved):
    (saved / METADATA_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="corrupt"):
        load_model(saved)


def test_refuses_to_save_an_unfitted_model(tmp_path):
    with pytest.raises(ArtifactError):
        save_model(HotlineClassifier(), tmp_path)
