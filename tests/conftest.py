"""Shared fixtures: real databases (SQLite, and PostgreSQL when the test command started one) and
real brokers (kombu's SQLite transport, and RabbitMQ when started).

`scripts/test.sh` exports HOTLINE_TEST_POSTGRES_URL and HOTLINE_TEST_AMQP_URL and sets
HOTLINE_REQUIRE_SERVICES=1, which turns a missing server into an error instead of a skip.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from fixtures import DATA_DIR
from router.catalogue import set_default_directory

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
POSTGRES_URL = os.environ.get("HOTLINE_TEST_POSTGRES_URL", "")
AMQP_URL = os.environ.get("HOTLINE_TEST_AMQP_URL", "")
REQUIRE_SERVICES = os.environ.get("HOTLINE_REQUIRE_SERVICES") == "1"


DEMO_PASSWORD = "test-demo-password"

# The tests' catalogue is the shipped reference data, as the service's default setting names it.
set_default_directory(DATA_DIR)
"""The demo accounts' password in tests (HOTLINE_DEMO_PASSWORD)."""


def _need(url: str, what: str) -> str:
    if url:
        return url
    message = f"{what} not configured (run the suite with `make test`)"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def pytest_configure(config: pytest.Config) -> None:
    # The process-wide settings must never read a developer's .env or var/ during tests.
    os.environ.setdefault("HOTLINE_ENVIRONMENT", "test")
    os.environ.setdefault("HOTLINE_SECRET_KEY", "test-secret-key-not-for-production")
    os.environ.setdefault("HOTLINE_DEMO_PASSWORD", DEMO_PASSWORD)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say plainly how many tests ran against each real server."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for backend in ("postgresql", "rabbitmq"):
                if f"[{backend}" in nodeid or f"-{backend}" in nodeid:
                    counts.setdefault(backend, {}).setdefault(outcome, 0)
                    counts[backend][outcome] += 1
    for backend, by_outcome in sorted(counts.items()):
        summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(by_outcome.items()))
        terminalreporter.write_line(f"real {backend} tests: {summary}")


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Point the process-wide settings at a private var/ directory; reset caches around the test."""
    from service import runtime

    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path / "var"))
    for name in ("HOTLINE_DATABASE_URL", "HOTLINE_BROKER_URL", "HOTLINE_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    runtime.reset()
    yield tmp_path / "var"
    runtime.reset()


class _Templates:
    """Migrated (and optionally seeded) template databases, built once per run and copied per test.

    Running the migrations for every test costs seconds; copying a template file (SQLite) or
    `CREATE DATABASE ... TEMPLATE` (PostgreSQL) costs milliseconds. The migrations themselves are
    still exercised: by building the templates, and by tests/service/test_migrations.py.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: set[tuple[str, bool]] = set()
        # Per run, so that two runs sharing one PostgreSQL server never drop each other's databases.
        self.suffix = f"_{os.getpid()}"
        self.created: dict[str, set[str]] = {}

    def sqlite(self, target: Path, *, seeded: bool) -> str:
        import shutil

        template = self.root / f"template-{'seeded' if seeded else 'plain'}.sqlite3"
        if ("sqlite", seeded) not in self.built:
            self._build(f"sqlite:///{template}", seeded=seeded)
            self.built.add(("sqlite", seeded))
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"

    def postgresql(self, base_url: str, *, seeded: bool) -> str:
        from sqlalchemy.engine import make_url

        from service.db import create_db_engine

        base = make_url(base_url)
        template = f"{base.database}_template_{'seeded' if seeded else 'plain'}{self.suffix}"
        target = f"{base.database}_test{self.suffix}"
        self.created.setdefault(base_url, set()).update((template, target))
        admin = create_db_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                if ("postgresql", seeded) not in self.built:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))
                    connection.execute(text(f'CREATE DATABASE "{template}"'))
                    template_url = base.set(database=template).render_as_string(False)
                    self._build(template_url, seeded=seeded)
                    self.built.add(("postgresql", seeded))
                connection.execute(text(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)'))
                connection.execute(text(f'CREATE DATABASE "{target}" TEMPLATE "{template}"'))
        finally:
            admin.dispose()
        return base.set(database=target).render_as_string(False)

    @staticmethod
    def _build(url: str, *, seeded: bool) -> None:
        from service import migrate
        from service.bootstrap import load_reference_data, seed_demo_accounts
        from service.config import load_settings
        from service.db import Database

        migrate.upgrade(url)
        if seeded:
            database = Database(url)
            try:
                load_reference_data(database)
                seed_demo_accounts(database, load_settings())
            finally:
                database.engine.dispose()

    def drop_all(self) -> None:
        from service.db import create_db_engine

        for base_url, names in self.created.items():
            admin = create_db_engine(base_url).execution_options(isolation_level="AUTOCOMMIT")
            try:
                with admin.connect() as connection:
                    for name in sorted(names, key=lambda n: "_template_" in n):  # copies first
                        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            finally:
                admin.dispose()


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Templates]:
    templates = _Templates(tmp_path_factory.mktemp("db-templates"))
    yield templates
    templates.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, _templates: _Templates) -> str:
    """A freshly migrated database of each kind; already seeded with the reference data and the
    demo accounts when the test also asks for `seeded_env`."""
    seeded = "seeded_env" in request.fixturenames
    if request.param == "sqlite":
        return _templates.sqlite(tmp_path / "test.sqlite3", seeded=seeded)
    return _templates.postgresql(_need(POSTGRES_URL, "PostgreSQL"), seeded=seeded)


@pytest.fixture
def app_env(settings_env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings pointing at the migrated test database (embedded broker under tmp)."""
    from service import runtime

    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    runtime.reset()
    return database_url


@pytest.fixture(params=["sqla", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqla":
        return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    url = _need(AMQP_URL, "RabbitMQ")
    _purge_rabbitmq_queues(url)
    return url


@pytest.fixture(params=["rabbitmq"])
def amqp_url() -> str:
    """The real RabbitMQ (the id `rabbitmq` marks the test in the summary)."""
    return _need(AMQP_URL, "RabbitMQ")


def _purge_rabbitmq_queues(url: str) -> None:
    """Empty our task queues so that one test's leftovers never reach the next test's worker."""
    import pika
    from pika.exceptions import ChannelClosedByBroker

    from service.delivery.rabbitmq import connection_parameters
    from service.worker.app import QUEUES

    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        for name in QUEUES:
            channel = connection.channel()
            try:
                channel.queue_purge(name)
                channel.close()
            except ChannelClosedByBroker:
                pass  # not declared yet
    finally:
        connection.close()


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable


# API fixtures: a demo model trained once per run, and a seeded, migrated database.
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
    """Migrated database with the reference data and demo accounts (copied from the seeded
    template by `database_url`); the demo model active."""
    from service import runtime

    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(demo_model_dir))
    runtime.reset()
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
