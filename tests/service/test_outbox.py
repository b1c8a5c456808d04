from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from service import outbox
from service.db import Database


class RecordingSender:
    """A sender that records publishes, and can be told the broker is down."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []
        self.down = False

    def __call__(self, task: str, kwargs: dict[str, Any], task_id: str) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        self.sent.append((task, kwargs, task_id))


@pytest.fixture
def sender() -> RecordingSender:
    return RecordingSender()


@pytest.fixture
def database(database_url: str, sender: RecordingSender) -> Database:
    def publish_now(ids: list[int]) -> None:
        with db.session() as session:
            outbox.publish(session, sender, ids=ids)

    db = Database(database_url, after_commit=publish_now)
    yield db
    db.dispose()


def test_message_is_published_after_commit(database: Database, sender: RecordingSender) -> None:
    with database.session() as session:
        message = outbox.enqueue(session, "system.probe", probe_id="p1")
        assert sender.sent == []  # nothing leaves before the commit
    assert sender.sent == [("system.probe", {"probe_id": "p1"}, f"outbox-{message.id}")]
    with database.session() as session:
        assert outbox.pending_count(session) == 0


def test_rolled_back_transaction_publishes_nothing(
    database: Database, sender: RecordingSender
) -> None:
    with pytest.raises(RuntimeError), database.session() as session:
        outbox.enqueue(session, "system.probe", probe_id="p1")
        raise RuntimeError("the change failed")
    assert sender.sent == []
    with database.session() as session:
        assert session.scalars(select(outbox.OutboxMessage)).all() == []


def test_broker_outage_keeps_message_until_relay(
    database: Database, sender: RecordingSender
) -> None:
    sender.down = True
    with database.session() as session:
        outbox.enqueue(session, "system.probe", probe_id="p1")
    with database.session() as session:
        assert outbox.pending_count(session) == 1
        stored = session.scalars(select(outbox.OutboxMessage)).one()
        assert "broker unreachable" in stored.last_error
    sender.down = False
    with database.session() as session:
        assert outbox.publish(session, sender, older_than=timedelta(0)) == 1
    with database.session() as session:
        assert outbox.publish(session, sender, older_than=timedelta(0)) == 0
        assert outbox.pending_count(session) == 0
    assert [task_id for _, _, task_id in sender.sent] == ["outbox-1"]


def test_relay_skips_recent_messages(database: Database, sender: RecordingSender) -> None:
    sender.down = True
    with database.session() as session:
        outbox.enqueue(session, "system.probe", probe_id="p1")
    sender.down = False
    with database.session() as session:
        assert outbox.publish(session, sender, older_than=timedelta(minutes=5)) == 0
    assert sender.sent == []
