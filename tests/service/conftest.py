"""Fixtures for API tests: a demo model trained once per run, and a seeded, migrated database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

DEMO_PASSWORD = "test-demo-password"  # tests/conftest.py sets HOTLINE_DEMO_PASSWORD


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model trained from a small seeded demo corpus (no trained binaries in git)."""
    from fixtures.generator import write_corpus
    from training.workflow import train_model

    root = tmp_path_factory.mktemp("demo-model")
    corpus = root / "corpus.csv"
    write_corpus(corpus, 4000, seed=5, progress=False)
    train_model(
        [corpus],
        text_column="text",
        label_column="category_code",
        department_column="department_code",
        out=root / "model",
        seed=0,
    )
    return root / "model"


@pytest.fixture
def seeded_env(app_env: str, demo_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Migrated database with the reference data and demo accounts; the demo model active."""
    from service import runtime
    from service.bootstrap import load_reference_data, seed_demo_accounts
    from service.config import get_settings

    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(demo_model_dir))
    runtime.reset()
    load_reference_data(runtime.get_database())
    seed_demo_accounts(runtime.get_database(), get_settings())
    return app_env


@pytest.fixture
def client(seeded_env: str) -> TestClient:
    from service.api.app import create_app

    return TestClient(create_app())


@pytest.fixture
def login(client: TestClient) -> Callable[[str], dict[str, str]]:
    """Headers carrying a bearer token of the named demo account."""
    tokens: dict[str, str] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in tokens:
            response = client.post(
                "/api/v1/auth/token", data={"username": username, "password": DEMO_PASSWORD}
            )
            assert response.status_code == 200, response.text
            tokens[username] = response.json()["access_token"]
        return {"Authorization": f"Bearer {tokens[username]}"}

    return headers
