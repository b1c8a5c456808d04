"""Two `hotline scheduler` processes never both run beat: the second waits as a standby and takes
over when the first is killed (PostgreSQL advisory lock; SQLite file lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.leader import LeaderLock
from tests.support import wait_for

BEAT_SENT = "Sending due task"


class Scheduler:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "scheduler"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def scheduler_env(
    settings_env: Path, database_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    yield {
        **os.environ,
        "HOTLINE_VAR_DIR": str(settings_env),
        "HOTLINE_DATABASE_URL": database_url,
        "HOTLINE_BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
        "HOTLINE_OUTBOX_RELAY_SECONDS": "0.5",
        # Beat's "Sending due task" lines about the idle relay are DEBUG (service.worker.app).
        "HOTLINE_LOG_LEVEL": "DEBUG",
    }


@pytest.mark.slow
def test_a_second_scheduler_waits_and_takes_over_when_the_first_dies(
    scheduler_env: dict[str, str], tmp_path: Path
) -> None:
    first = Scheduler(scheduler_env, tmp_path / "first.log")
    second: Scheduler | None = None
    try:
        assert wait_for(lambda: BEAT_SENT in first.output(), timeout=60), first.output()[-3000:]
        second = Scheduler(scheduler_env, tmp_path / "second.log")
        standby = second
        assert wait_for(lambda: "standby" in standby.output(), timeout=60), standby.output()
        sent_before = first.output().count(BEAT_SENT)
        # Both run for a while: only the first sends anything.
        assert wait_for(lambda: first.output().count(BEAT_SENT) >= sent_before + 4, timeout=30)
        assert BEAT_SENT not in second.output()
        assert "holding the" not in second.output()

        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        assert wait_for(lambda: BEAT_SENT in standby.output(), timeout=60), standby.output()
        assert "holding the" in second.output()
        assert second.process.poll() is None
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_the_lock_is_exclusive_and_freed_on_release(database_url: str, tmp_path: Path) -> None:
    one = LeaderLock(database_url, var_dir=tmp_path)
    two = LeaderLock(database_url, var_dir=tmp_path)
    try:
        assert one.try_acquire()
        assert not two.try_acquire()
        one.release()
        assert two.try_acquire()
        assert not one.try_acquire()
    finally:
        one.release()
        two.release()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_losing_the_postgresql_connection_stops_the_holder(
    database_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from service.db import create_db_engine

    lost: list[bool] = []
    lock = LeaderLock(
        database_url, var_dir=tmp_path, watch_seconds=0.1, on_lost=lambda: lost.append(True)
    )
    assert lock.try_acquire()
    admin = create_db_engine(database_url)
    try:
        with admin.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = :low AND pid <> pg_backend_pid()"
                ),
                {"low": lock.key & 0xFFFFFFFF},
            )
            connection.commit()
        assert wait_for(lambda: lost, timeout=10)
    finally:
        lock._stop.set()
        admin.dispose()
