"""A worker killed with SIGKILL in the middle of dispatching loses and duplicates nothing.

Real RabbitMQ (Celery broker and department queues), real PostgreSQL, real worker processes and
the reference department consumer: work orders are dispatched, the worker is killed while it is
delivering them, a second worker takes over. Every dispatch reaches the department, and after the
department's deduplication on the message id (the delivery key) it holds exactly one message per
dispatch; at most the one delivery in flight at the kill is published twice, with the same id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from sqlalchemy import func, select

from router.catalogue.models import Department
from router.workorders.service import AppealInput, act, receive_appeal
from service import outbox, runtime
from service.db import Database
from service.delivery import service as delivery
from service.delivery.models import Delivery
from service.delivery.rabbitmq import (
    DepartmentMessage,
    connection_parameters,
    consume_department,
    routing_key,
)
from tests.support import wait_for

pytestmark = pytest.mark.slow

DISPATCHES = 100


class DepartmentInbox:
    """The department side: every message received, and the ones kept after deduplication."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.kept: set[str] = set()
        self.lock = threading.Lock()

    def handle(self, message: DepartmentMessage) -> None:
        with self.lock:
            self.received.append(message.delivery_id)
            self.kept.add(message.delivery_id)

    def count(self) -> int:
        with self.lock:
            return len(self.received)


@pytest.fixture
def department(amqp_url: str) -> Iterator[tuple[str, DepartmentInbox]]:
    code = f"crash-{uuid.uuid4().hex[:8]}"
    inbox = DepartmentInbox()
    stop = threading.Event()
    thread = threading.Thread(
        target=consume_department, args=(amqp_url, code, inbox.handle), kwargs={"stop_event": stop}
    )
    thread.start()
    yield code, inbox
    stop.set()
    thread.join(timeout=10)
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    connection.channel().queue_delete(routing_key(code))
    connection.close()


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "worker",
                "--pool",
                "solo",
                "--queues",
                "dispatch",
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("broker_url", ["rabbitmq"], indirect=True)
def test_a_worker_killed_mid_dispatch_loses_and_duplicates_nothing(
    database_url: str,
    broker_url: str,
    department: tuple[str, DepartmentInbox],
    settings_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    code, inbox = department
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    monkeypatch.setenv("HOTLINE_BROKER_URL", broker_url)
    runtime.reset()
    database = Database(database_url)
    expected = set()
    with database.session() as session:
        session.add(Department(code=code, name="测试部门", kind="city", delivery="queue"))
        session.flush()
        for i in range(DISPATCHES):
            order, _ = receive_appeal(
                db_session=session, appeal=AppealInput(channel="web", text=f"路灯坏了 {i}")
            )
            order.department_code = code
            act(db_session=session, work_order=order, action="dispatch", actor="a", role="agent")
            (row,) = delivery.record_dispatch(
                db_session=session, work_order=order, department_code=code
            )
            expected.add(row.delivery_key)
    with database.session() as session:  # what the unit of work does after its commit
        assert outbox.publish(session, runtime.send_task, limit=DISPATCHES) == DISPATCHES

    env = {**os.environ, "HOTLINE_DATABASE_URL": database_url, "HOTLINE_BROKER_URL": broker_url}
    log = tmp_path / "worker.log"
    first = start_worker(env, log)
    try:
        started = wait_for(lambda: inbox.count() >= 10, timeout=60, interval=0.02)
        assert started, log.read_text()[-3000:]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = inbox.count()
    assert at_kill < DISPATCHES, "the worker finished before it could be killed"

    second = start_worker(env, log)
    try:

        def all_sent() -> bool:
            with database.session() as session:
                sent = session.scalar(
                    select(func.count()).select_from(Delivery).where(Delivery.status == "sent")
                )
            return sent == DISPATCHES and inbox.kept == expected

        assert wait_for(all_sent, timeout=120, interval=0.2), log.read_text()[-3000:]
        time.sleep(1.0)  # let any stray duplicate arrive before counting
    finally:
        second.terminate()
        second.wait(timeout=20)
    database.dispose()

    assert inbox.kept == expected  # nothing lost
    duplicates = len(inbox.received) - len(inbox.kept)
    print(f"killed after {at_kill} of {DISPATCHES} messages; {duplicates} duplicate(s)")
    assert 0 <= duplicates <= 1, f"{duplicates} duplicates after killing at {at_kill}"
