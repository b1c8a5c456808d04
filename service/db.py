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

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

AfterCommit = Callable[[list[int]], None]
"""Called with the ids of the outbox rows a transaction committed."""
PublishCommitted = Callable[[list[tuple[int, str, dict[str, Any]]]], None]
"""Called with the (id, task, kwargs) of the outbox rows a transaction committed."""


def import_models() -> None:
    """Import every module that defines tables, so that `Base.metadata` is complete."""
    import router.callbacks.models
    import router.catalogue.models
    import router.duplicates.models
    import router.hotspots.models
    import router.knowledge.models
    import router.notifications.models
    import router.workorders.models  # noqa: F401
    import service.auth.models
    import service.channels.models
    import service.delivery.models
    import service.diagnostics
    import service.outbox
    import service.throttle.models  # noqa: F401
    import training.models  # noqa: F401


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
    # Pre-ping costs a round trip per checkout, but without it the first request after a
    # PostgreSQL restart fails with a 500 in every process; pool_recycle retires idle connections.
    return create_engine(
        url, echo=echo, pool_pre_ping=True, pool_recycle=1800, pool_size=10, max_overflow=20
    )


class Database:
    """An engine plus a session factory; `session()` is the unit of work."""

    def __init__(
        self,
        url: str,
        *,
        after_commit: AfterCommit | None = None,
        publish_committed: PublishCommitted | None = None,
    ) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)
        self.after_commit = after_commit
        self.publish_committed = publish_committed

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
            # A message rolled back with a savepoint lost its identity: it is not published.
            messages = [
                (message.id, message.task, message.kwargs)
                for message in session.info.pop("outbox_messages", [])
                if inspect(message).has_identity
            ]
            session.close()
        if not pending:
            return
        try:
            if self.publish_committed is not None:
                self.publish_committed(messages)
            elif self.after_commit is not None:
                self.after_commit(pending)
        except Exception:  # the relay publishes what is left; never fail a committed request
            log.warning("outbox: immediate publish failed; the relay will retry", exc_info=True)

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
