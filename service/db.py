"""Database engine, sessions and the unit of work.

The unit of work (`Database.session()`) is the one transaction owner: it commits or rolls back,
and only after a successful commit does it hand the outbox messages written in that transaction to
the publisher. Domain code only `flush()`es.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

AfterCommit = Callable[[list[int]], None]


def import_models() -> None:
    """Import every module that defines tables, so that `Base.metadata` is complete."""
    import router.callbacks
    import router.merges
    import router.models
    import router.notifications  # noqa: F401
    import service.auth.models
    import service.channels.models
    import service.delivery.models
    import service.diagnostics
    import service.outbox  # noqa: F401


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine with the settings each backend needs for a multi-process service."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, echo=echo, connect_args={"check_same_thread": False, "timeout": 30}
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets the API, the worker and the scheduler read while one of them writes.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """An engine plus a session factory; `session()` is the unit of work."""

    def __init__(self, url: str, *, after_commit: AfterCommit | None = None) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.after_commit = after_commit

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open a transaction; commit on success, roll back on error, then publish the outbox."""
        session = self.session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            pending = list(session.info.pop("outbox_ids", []))
            session.close()
        if pending and self.after_commit is not None:
            try:
                self.after_commit(pending)
            except Exception:  # the relay publishes what is left; never fail a committed request
                log.warning("outbox: immediate publish failed; the relay will retry", exc_info=True)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
