"""The `hotline` command: lists its commands, and bad configuration gives one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def hotline(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_help_lists_the_commands() -> None:
    result = hotline("--help")
    assert result.returncode == 0
    for command in ("serve", "worker", "scheduler", "run", "migrate", "probe", "phone-consumer"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["migrate"], {"HOTLINE_DATABASE_URL": "::garbage"}, "HOTLINE_DATABASE_URL"),
        (["serve"], {"HOTLINE_DATABASE_URL": "mysql://x@y/z"}, "must be sqlite or postgresql"),
        (["worker"], {"HOTLINE_BROKER_URL": "amqp://u:p@127.0.0.1:9//"}, "broker amqp unreachable"),
        (["run"], {"HOTLINE_BROKER_URL": "amqp://u:p@127.0.0.1:9//"}, "broker amqp unreachable"),
        (
            ["migrate"],
            {"HOTLINE_DATABASE_URL": "postgresql+psycopg://u:p@127.0.0.1:9/db"},
            "database unreachable",
        ),
        (["serve"], {}, "run hotline migrate"),
        (["phone-consumer"], {}, "HOTLINE_PHONE_QUEUE_URL"),
    ],
)
def test_bad_configuration_is_one_clear_line(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    base = {"HOTLINE_VAR_DIR": str(tmp_path / "var"), "HOTLINE_BROKER_CONNECT_TIMEOUT": "0.5"}
    result = hotline(*args, env={**base, **env}, cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_knowledge_seed_is_idempotent_and_refuses_a_bad_limit(tmp_path: Path) -> None:
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path / "var"),
        "HOTLINE_DATABASE_URL": f"sqlite:///{tmp_path / 'kb.sqlite3'}",
    }
    assert hotline("migrate", env=env, cwd=tmp_path).returncode == 0
    first = hotline("knowledge", "seed", "--limit", "20", "--no-classify", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "seeded 20 knowledge articles" in first.stdout
    again = hotline("knowledge", "seed", "--limit", "20", "--no-classify", env=env, cwd=tmp_path)
    assert "seeded 0 knowledge articles" in again.stdout
    bad = hotline("knowledge", "seed", "--limit", "0", env=env, cwd=tmp_path)
    assert bad.returncode != 0
    assert bad.stderr.strip() == "error: --limit must be positive, got 0"


@pytest.mark.parametrize("command", ["serve", "worker", "scheduler"])
@pytest.mark.parametrize(
    ("revision", "expected"),
    [(None, "run hotline migrate"), ("9999_future", "newer than this release")],
)
def test_processes_refuse_a_schema_they_were_not_built_for(
    tmp_path: Path,
    database_url: str,
    command: str,
    revision: str | None,
    expected: str,
) -> None:
    """`hotline migrate` runs once per release (docs/deployment.md); serve, worker and scheduler
    only check, and refuse an older (un-migrated) or a newer schema in one line."""
    from sqlalchemy import text

    from service.db import create_db_engine

    engine = create_db_engine(database_url)
    with engine.begin() as connection:
        if revision is None:
            connection.execute(text("DELETE FROM alembic_version"))
        else:
            connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path / "var"),
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
    }
    result = hotline(command, env=env, cwd=tmp_path)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: database schema at ")
    assert expected in lines[0]
