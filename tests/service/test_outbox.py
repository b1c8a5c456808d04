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


@pytest.fixture
def direct_database(database_url: str, sender: RecordingSender) -> Database:
    """A unit of work that publishes committed messages from memory, as the service does."""

    def publish_now(messages: list[tuple[int, str, dict[str, Any]]]) -> None:
        outbox.publish_committed(db.engine, sender, messages)

    db = Database(database_url, publish_committed=publish_now)
    yield db
    db.dispose()


def test_committed_messages_are_published_from_memory_and_marked_sent(
    direct_database: Database, sender: RecordingSender
) -> None:
    with direct_database.session() as session:
        kept = outbox.enqueue(session, "system.probe", probe_id="kept")
        with pytest.raises(RuntimeError), session.begin_nested():
            outbox.enqueue(session, "system.probe", probe_id="rolled-back")
            raise RuntimeError("the savepoint fails")
        assert sender.sent == []
    # Only the message that was committed leaves, once.
    assert sender.sent == [("system.probe", {"probe_id": "kept"}, f"outbox-{kept.id}")]
    with direct_database.session() as session:
        assert outbox.pending_count(session) == 0
        assert len(session.scalars(select(outbox.OutboxMessage)).all()) == 1


def test_failed_direct_publish_is_left_for_the_relay(
    direct_database: Database, sender: RecordingSender
) -> None:
    sender.down = True
    with direct_database.session() as session:
        message = outbox.enqueue(session, "system.probe", probe_id="p1")
    with direct_database.session() as session:
        row = session.get_one(outbox.OutboxMessage, message.id)
        assert row.sent_at is None
        assert row.attempts == 1
        assert "broker unreachable" in row.last_error
    sender.down = False
    with direct_database.session() as session:
        assert outbox.publish(session, sender, ids=[message.id]) == 1
    assert [task_id for *_, task_id in sender.sent] == [f"outbox-{message.id}"]
