"""Readiness checks: database (reachable, migrated), broker (reachable), active model (present)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.config import Settings
from service.db import Database
from service.migrate import current_revision, head_revision, known_revisions


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_database(database: Database) -> Check:
    try:
        database.ping()
        current = current_revision(database.engine)
    except Exception as exc:
        return Check("database", False, f"unreachable: {type(exc).__name__}: {exc}"[:300])
    head = head_revision()
    if current is not None and current not in known_revisions():
        # A later release migrated this database: running older code on it would be wrong.
        return Check(
            "database",
            False,
            f"schema at {current} is newer than this release (head {head}): "
            "run the release that migrated it",
        )
    if current != head:
        return Check(
            "database", False, f"schema at {current}, expected {head}: run hotline migrate"
        )
    return Check("database", True, f"{database.engine.dialect.name} at {current}")


def check_broker(settings: Settings) -> Check:
    from kombu import Connection

    try:
        with Connection(
            settings.broker_url, connect_timeout=settings.broker_connect_timeout
        ) as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.broker_connect_timeout)
    except Exception as exc:
        return Check("broker", False, f"unreachable: {type(exc).__name__}: {exc}"[:300])
    return Check("broker", True, settings.broker_url.split("://", 1)[0])


def check_model(model_dir: Path) -> Check:
    metadata = model_dir / "metadata.json"
    if not (model_dir / "model.joblib").is_file() or not metadata.is_file():
        return Check("model", False, f"no model in {model_dir}: run hotline train or hotline run")
    return Check("model", True, str(model_dir))
