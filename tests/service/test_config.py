from __future__ import annotations

from pathlib import Path

import pytest

from service.config import ConfigurationError, load_settings


def test_defaults_are_embedded_sqlite_under_var_dir(settings_env: Path) -> None:
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{(settings_env / 'hotline.sqlite3').as_posix()}"
    assert settings.broker_url.startswith("sqla+sqlite:///")
    assert settings.model_dir == settings_env / "models"
    assert not settings.uses_rabbitmq


def test_amqp_broker_url_selects_rabbitmq(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_BROKER_URL", "amqp://u:p@127.0.0.1:5672//")
    assert load_settings().uses_rabbitmq


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("HOTLINE_DATABASE_URL", "::not a url", "HOTLINE_DATABASE_URL is not a database URL"),
        ("HOTLINE_DATABASE_URL", "mysql://x@localhost/db", "must be sqlite or postgresql"),
        ("HOTLINE_BROKER_URL", "redis://localhost", "HOTLINE_BROKER_URL scheme 'redis'"),
        ("HOTLINE_PORT", "99999", "HOTLINE_PORT"),
        ("HOTLINE_ASSESSMENT_WEIGHTS", '{"speed": 1}', "unknown assessment weight(s) speed"),
        ("HOTLINE_ASSESSMENT_RED_BELOW", "95", "red_below <= yellow_below"),
    ],
)
def test_bad_settings_raise_one_clear_message(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as excinfo:
        load_settings()
    assert expected in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_placeholder_secret_is_refused_outside_development(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_ENVIRONMENT", "production")
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "changethis")
    with pytest.raises(ConfigurationError, match="HOTLINE_SECRET_KEY"):
        load_settings()


def test_default_demo_password_is_refused_outside_development(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_ENVIRONMENT", "production")
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "a-real-secret-that-is-long-enough-for-hmac")
    monkeypatch.setenv("HOTLINE_DEMO_PASSWORD", "hotline12345")
    with pytest.raises(ConfigurationError, match="HOTLINE_DEMO_PASSWORD"):
        load_settings()


def test_placeholder_secret_is_accepted_in_development(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_ENVIRONMENT", "development")
    monkeypatch.delenv("HOTLINE_SECRET_KEY", raising=False)
    monkeypatch.delenv("HOTLINE_DEMO_PASSWORD", raising=False)
    assert load_settings().environment == "development"


def test_short_secret_is_refused_outside_development(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_ENVIRONMENT", "production")
    monkeypatch.setenv("HOTLINE_SECRET_KEY", "too-short-a-secret")
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        load_settings()
