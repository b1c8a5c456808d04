"""One scheduler at a time: a lock held for the life of the process that runs Celery beat.

On PostgreSQL the lock is a session-level advisory lock on a connection of its own (autocommit,
never idle in a transaction); PostgreSQL releases it when that connection ends, so a scheduler
killed on one host frees it for a standby on another within seconds. On SQLite (the embedded,
single-host default) it is an exclusive `flock` on `<var>/scheduler.lock`, released by the kernel
when the process dies. A standby polls until it gets the lock. If the holder loses its
PostgreSQL connection it can no longer know whether another scheduler took over, so the watchdog
ends the process at once (systemd starts it again, as a standby).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

__all__ = ["SCHEDULER_LOCK_KEY", "LeaderLock", "scheduler_lock"]

log = logging.getLogger(__name__)

SCHEDULER_LOCK_KEY = 0x686F746C696E65  # "hotline" in ASCII: one bigint key for the whole cluster
"""The advisory-lock key of the scheduler (one per database, hence per deployment)."""


class LeaderLock:
    """An exclusive lock held until the process ends (or :meth:`release`).

    :meth:`acquire` blocks, polling every `poll_seconds`, and calls `on_standby` once when it has
    to wait. On PostgreSQL a watchdog thread checks the lock's connection every
    `watch_seconds` and calls `on_lost` (default: end the process) when it is gone.
    """

    def __init__(
        self,
        database_url: str,
        *,
        var_dir: Path,
        key: int = SCHEDULER_LOCK_KEY,
        poll_seconds: float = 2.0,
        watch_seconds: float = 5.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.database_url = database_url
        self.path = var_dir / "scheduler.lock"
        self.key = key
        self.poll_seconds = poll_seconds
        self.watch_seconds = watch_seconds
        self.on_lost = on_lost or _exit_now
        self._file: IO[bytes] | None = None
        self._connection: Any = None
        self._engine: Any = None
        self._stop = threading.Event()

    @property
    def kind(self) -> str:
        backend = make_url(self.database_url).get_backend_name()
        return "postgresql advisory lock" if backend == "postgresql" else f"file lock {self.path}"

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it."""
        if make_url(self.database_url).get_backend_name() == "postgresql":
            return self._try_advisory()
        return self._try_file()

    def acquire(self, on_standby: Callable[[str], None] | None = None) -> None:
        """Block until this process holds the lock."""
        waiting = False
        while not self.try_acquire():
            if not waiting and on_standby is not None:
                on_standby(self.kind)
            waiting = True
            time.sleep(self.poll_seconds)

    def release(self) -> None:
        self._stop.set()
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            try:
                self._connection.close()  # ends the session: PostgreSQL frees the lock
            finally:
                self._connection = None
                self._engine.dispose()

    def _try_file(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def _try_advisory(self) -> bool:
        if self._engine is None:
            self._engine = create_engine(
                self.database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
            )
        connection = self._engine.connect()
        try:
            held = connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key})
        except Exception:
            connection.close()
            raise
        if not held:
            connection.close()
            return False
        self._connection = connection
        threading.Thread(target=self._watch, name="scheduler-lock-watchdog", daemon=True).start()
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.watch_seconds):
            connection = self._connection
            if connection is None:
                return
            try:
                connection.execute(text("SELECT 1"))
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.error(
                    "scheduler: lost the PostgreSQL connection holding the lock (%s); stopping "
                    "so that no two schedulers run",
                    type(exc).__name__,
                )
                self.on_lost()
                return


def _exit_now() -> None:
    logging.shutdown()
    os._exit(3)


def scheduler_lock(database_url: str, var_dir: Path) -> LeaderLock:
    """The scheduler's lock for this deployment's database."""
    return LeaderLock(database_url, var_dir=var_dir)
