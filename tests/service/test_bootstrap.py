"""Start-up preparation: the demo model is trained when missing or left by an older format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier.artifact import FORMAT_VERSION, load_metadata
from service.config import Settings


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, environment: str) -> Settings:
    from service.config import load_settings

    monkeypatch.setenv("HOTLINE_ENVIRONMENT", environment)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("HOTLINE_DEMO_CORPUS_SIZE", "1500")
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "x" * 40)
    monkeypatch.setenv("HOTLINE_DEMO_PASSWORD", "a-real-password-for-tests")
    return load_settings()


def _age(model_dir: Path) -> None:
    path = model_dir / "metadata.json"
    meta = json.loads(path.read_text())
    meta["format_version"] = FORMAT_VERSION - 1
    path.write_text(json.dumps(meta))


def test_a_missing_demo_model_is_trained_and_an_outdated_one_replaced_in_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.bootstrap import ensure_demo_model

    settings = _settings(tmp_path, monkeypatch, "development")
    assert ensure_demo_model(settings) is True
    assert ensure_demo_model(settings) is False
    _age(tmp_path / "model")
    assert ensure_demo_model(settings) is True
    assert load_metadata(tmp_path / "model")["format_version"] == FORMAT_VERSION


def test_an_outdated_model_is_left_alone_outside_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.bootstrap import ensure_demo_model

    ensure_demo_model(_settings(tmp_path, monkeypatch, "development"))
    _age(tmp_path / "model")
    settings = _settings(tmp_path, monkeypatch, "production")
    assert ensure_demo_model(settings) is False
    assert load_metadata(tmp_path / "model")["format_version"] == FORMAT_VERSION - 1
