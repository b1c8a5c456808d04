"""Delivery of dispatched work orders to departments' queues, on the real RabbitMQ.

Broker outages are simulated with a TCP proxy in front of the shared test broker: taking the
proxy down is, for our clients, the broker going away, without stopping a RabbitMQ that other
tests are using.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from sqlalchemy import select

from router.catalogue.models import Department
from router.workorders.models import WorkOrder
from router.workorders.service import AppealInput, act, receive_appeal
from service import outbox
from service.config import Settings
from service.db import Database
from service.delivery import service as delivery
from service.delivery.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    UnroutableError,
)
from service.delivery.models import Delivery
from service.delivery.rabbitmq import (
    DepartmentMessage,
    DepartmentPublisher,
    connection_parameters,
    consume_department,
    declare_department_queue,
    escape_code,
    routing_key,
)
from service.dispatching import record_deliveries
from tests.support import drain, queue_length, wait_for

# --- names and topology, without a broker ---------------------------------------------------


@pytest.mark.parametrize(
    ("code", "escaped"),
    [
        ("housing", "housing"),
        ("urban_mgmt-2", "urban_mgmt-2"),
        ("a.b", "a%2Eb"),
        ("a*", "a%2A"),
        ("#", "%23"),
        ("50%", "50%25"),
        ("城管", "%E5%9F%8E%E7%AE%A1"),
    ],
)
def test_department_codes_become_one_literal_topic_word(code: str, escaped: str) -> None:
    assert escape_code(code) == escaped
    assert routing_key(code) == f"dept.{escaped}"


def test_empty_or_overlong_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        routing_key("")
    with pytest.raises(ValueError, match="too long"):
        routing_key("城" * 100)


# --- helpers ---------------------------------------------------------------------------------


@dataclass
class Topology:
    """Private exchange and queue names for one test; the test's queues are deleted after it."""

    exchange: str
    dead_letter_exchange: str
    dead_letter_queue: str
    prefix: str
    queues: set[str] = field(default_factory=set)

    def code(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def queue(self, code: str) -> str:
        name = routing_key(code)
        self.queues.add(name)
        return name

    def publisher(self, url: str, **options: Any) -> DepartmentPublisher:
        return DepartmentPublisher(
            url,
            exchange=self.exchange,
            dead_letter_exchange=self.dead_letter_exchange,
            dead_letter_queue=self.dead_letter_queue,
            **options,
        )

    def declare(self, channel: BlockingChannel, code: str) -> str:
        self.queue(code)
        return declare_department_queue(
            channel,
            code,
            exchange=self.exchange,
            dead_letter_exchange=self.dead_letter_exchange,
            dead_letter_queue=self.dead_letter_queue,
        )


@pytest.fixture
def topology(amqp_url: str) -> Iterator[Topology]:
    tag = uuid.uuid4().hex[:10]
    names = Topology(
        exchange=f"test.{tag}.work_orders",
        dead_letter_exchange=f"test.{tag}.dead",
        dead_letter_queue=f"test.{tag}.work_orders.dead",
        prefix=f"t{tag}-",
    )
    yield names
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    channel = connection.channel()
    for queue in (*names.queues, names.dead_letter_queue):
        channel.queue_delete(queue)
    channel.exchange_delete(names.exchange)
    channel.exchange_delete(names.dead_letter_exchange)
    connection.close()


class BrokerProxy:
    """A TCP proxy to RabbitMQ that a test takes down (`stop`) and brings back (`start`)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        self.drop_connections()

    def drop_connections(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[tuple[BrokerProxy, str]]:
    parts = urlsplit(amqp_url)
    broker = BrokerProxy((parts.hostname or "127.0.0.1", parts.port or 5672))
    broker.start()
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{broker.port}"
    yield broker, urlunsplit(parts._replace(netloc=netloc))
    broker.stop()


# --- the publisher --------------------------------------------------------------------------


def test_publisher_sends_one_persistent_confirmed_message(
    amqp_url: str, topology: Topology
) -> None:
    code = topology.code("water.supply*")
    with topology.publisher(amqp_url) as publisher:
        publisher.publish(
            code,
            b'{"k":"v"}',
            message_id="20261123-0000001:1:x:rabbitmq",
            correlation_id="20261123-0000001",
            headers={"x-hotline-work-order": "20261123-0000001"},
        )
    ((properties, body),) = drain(amqp_url, topology.queue(code))
    assert body == b'{"k":"v"}'
    assert properties.delivery_mode == 2
    assert properties.message_id == "20261123-0000001:1:x:rabbitmq"
    assert properties.content_type == "application/json"
    assert properties.headers["x-hotline-work-order"] == "20261123-0000001"


def test_codes_with_wildcards_reach_only_their_own_queue(amqp_url: str, topology: Topology) -> None:
    plain, dotted, hashed = topology.code("a"), topology.code("a.b"), topology.code("a#")
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    for code in (plain, dotted, hashed):
        topology.declare(connection.channel(), code)
    connection.close()
    with topology.publisher(amqp_url, declare_queues=False) as publisher:
        publisher.publish(dotted, b"{}", message_id="m1")
    assert len(drain(amqp_url, routing_key(dotted))) == 1
    assert drain(amqp_url, routing_key(plain)) == []
    assert drain(amqp_url, routing_key(hashed)) == []


def test_a_message_no_queue_is_bound_for_is_reported(amqp_url: str, topology: Topology) -> None:
    with (
        topology.publisher(amqp_url, declare_queues=False) as publisher,
        pytest.raises(UnroutableError, match="no queue is bound"),
    ):
        publisher.publish(topology.code("nobody"), b"{}", message_id="m1")


def test_a_queue_declared_with_other_arguments_is_a_permanent_error(
    amqp_url: str, topology: Topology
) -> None:
    code = topology.code("classic")
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    connection.channel().queue_declare(topology.queue(code), durable=True)  # classic queue
    connection.close()
    with topology.publisher(amqp_url) as publisher, pytest.raises(PermanentDeliveryError):
        publisher.publish(code, b"{}", message_id="m1")


def test_publisher_reconnects_after_losing_its_connection(
    proxy: tuple[BrokerProxy, str], amqp_url: str, topology: Topology
) -> None:
    broker, url = proxy
    code = topology.code("reconnect")
    with topology.publisher(url) as publisher:
        publisher.publish(code, b"{}", message_id="m1")
        broker.drop_connections()
        publisher.publish(code, b"{}", message_id="m2")
        broker.stop()
        with pytest.raises(TransientDeliveryError, match="unreachable"):
            publisher.publish(code, b"{}", message_id="m3")
        broker.start()
        publisher.publish(code, b"{}", message_id="m4")
    ids = [properties.message_id for properties, _ in drain(amqp_url, topology.queue(code))]
    assert ids == ["m1", "m2", "m4"]


# --- dispatch -> outbox -> deliver, on each database -----------------------------------------


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


def add_department(database: Database, code: str) -> None:
    with database.session() as session:
        session.add(Department(code=code, name=f"部门 {code}", kind="city", delivery="queue"))


def dispatch(
    database: Database,
    code: str,
    text: str,
    *,
    assisting: tuple[str, ...] = (),
    caller_phone: str | None = None,
    caller_name: str | None = None,
) -> str:
    """An appeal dispatched to `code` (and assisting departments); returns the order number."""
    appeal = AppealInput(
        channel="web", text=text, caller_phone=caller_phone, caller_name=caller_name
    )
    with database.session() as session:
        order, _ = receive_appeal(db_session=session, appeal=appeal)
        order.department_code = code
        order.assisting_department_codes = list(assisting)
        act(db_session=session, work_order=order, action="dispatch", actor="a1", role="agent")
        for department in (code, *assisting):
            delivery.record_dispatch(
                db_session=session, work_order=order, department_code=department
            )
        return order.number


class Worker:
    """Stands in for Celery: takes `dispatch.deliver_batch` / `dispatch.deliver` tasks from the
    outbox and runs them.

    A task whose delivery fails transiently is kept for the next `run()`, as a Celery retry.
    """

    def __init__(self, database: Database, publisher: DepartmentPublisher) -> None:
        self.database = database
        self.publisher = publisher
        self.tasks: list[list[int]] = []
        self.transient_failures = 0

    def relay(self) -> None:
        def send(task: str, kwargs: dict[str, Any], _task_id: str) -> None:
            if task == "dispatch.deliver_batch":
                self.tasks.append(list(kwargs["delivery_ids"]))
            else:
                assert task == "dispatch.deliver"
                self.tasks.append([kwargs["delivery_id"]])

        with self.database.session() as session:
            outbox.publish(session, send, older_than=timedelta(0))

    def run(self, *, twice: bool = False) -> None:
        self.relay()
        tasks, self.tasks = self.tasks, []
        for delivery_ids in tasks * (2 if twice else 1):
            try:
                with self.database.session() as session:
                    delivery.deliver_many(
                        db_session=session,
                        delivery_ids=delivery_ids,
                        publisher=self.publisher,
                        http_client=None,
                    )
            except TransientDeliveryError:
                self.transient_failures += 1
                self.tasks.append(delivery_ids)


def declare_queue(url: str, topology: Topology, code: str) -> None:
    connection = pika.BlockingConnection(connection_parameters(url))
    topology.declare(connection.channel(), code)
    connection.close()


def message_ids(url: str, queue: str) -> list[str]:
    return [str(properties.message_id) for properties, _ in drain(url, queue)]


def test_each_dispatch_reaches_its_department_exactly_once(
    database: Database, amqp_url: str, topology: Topology
) -> None:
    lead, assisting = topology.code("housing"), topology.code("urban.mgmt")
    add_department(database, lead)
    add_department(database, assisting)
    numbers = [dispatch(database, lead, f"楼道灯坏了 {i}") for i in range(3)]
    numbers.append(dispatch(database, lead, "违章搭建", assisting=(assisting,)))
    with topology.publisher(amqp_url) as publisher:
        worker = Worker(database, publisher)
        worker.run(twice=True)  # every task delivered twice by the broker
        assert worker.transient_failures == 0
    assert sorted(message_ids(amqp_url, topology.queue(lead))) == sorted(
        f"{number}:1:{lead}:rabbitmq" for number in numbers
    )
    assert message_ids(amqp_url, topology.queue(assisting)) == [
        f"{numbers[-1]}:1:{assisting}:rabbitmq"
    ]
    with database.session() as session:
        statuses = session.scalars(select(Delivery.status)).all()
        assert statuses == ["sent"] * 5


def test_only_the_lead_department_receives_the_callers_personal_data(
    database: Database, amqp_url: str, topology: Topology
) -> None:
    lead, assisting = topology.code("housing"), topology.code("police")
    add_department(database, lead)
    add_department(database, assisting)
    text = "楼道堆物，身份证430102199001011234，回电13812345678"
    dispatch(
        database,
        lead,
        text,
        assisting=(assisting,),
        caller_phone="13812345678",
        caller_name="张三丰",
    )
    with topology.publisher(amqp_url) as publisher:
        Worker(database, publisher).run()
    ((_, lead_body),) = drain(amqp_url, topology.queue(lead))
    ((_, assisting_body),) = drain(amqp_url, topology.queue(assisting))
    to_lead, to_assisting = json.loads(lead_body)["appeal"], json.loads(assisting_body)["appeal"]
    assert to_lead["caller_phone"] == "13812345678" and to_lead["caller_name"] == "张三丰"
    assert to_lead["text"] == text
    assert to_assisting["caller_phone"] == "138****5678"
    assert to_assisting["caller_name"] == "张**"
    assert "430102199001011234" not in assisting_body.decode()
    assert "13812345678" not in assisting_body.decode()
    assert to_assisting["text"] == "楼道堆物，身份证4301**********1234，回电138****5678"


def test_recording_the_same_dispatch_twice_delivers_once(
    database: Database, amqp_url: str, topology: Topology
) -> None:
    code = topology.code("water")
    add_department(database, code)
    number = dispatch(database, code, "停水")
    with database.session() as session:
        work_order = session.scalars(select(WorkOrder)).one()
        (again,) = delivery.record_dispatch(
            db_session=session, work_order=work_order, department_code=code
        )
        assert again.delivery_key == f"{number}:1:{code}:rabbitmq"
    with topology.publisher(amqp_url) as publisher:
        Worker(database, publisher).run()
    assert message_ids(amqp_url, topology.queue(code)) == [f"{number}:1:{code}:rabbitmq"]


def test_one_task_delivers_every_department_of_a_dispatch(
    database: Database, amqp_url: str, topology: Topology
) -> None:
    lead, first, second = (topology.code(name) for name in ("roads", "police", "parks"))
    for code in (lead, first, second):
        add_department(database, code)
    number = dispatch(database, lead, "占道经营", assisting=(first, second))
    with database.session() as session:
        work_order = session.scalars(select(WorkOrder)).one()
        rows = delivery.record_dispatch_many(
            db_session=session,
            work_order=work_order,
            channels={code: ("rabbitmq",) for code in (lead, first, second)},
        )  # recording the same dispatch again finds the rows and enqueues nothing
        assert [row.department_code for row in rows] == [lead, first, second]
    with topology.publisher(amqp_url) as publisher:
        worker = Worker(database, publisher)
        worker.relay()
        assert len(worker.tasks) == 3  # `dispatch()` recorded one department per call
        worker.run(twice=True)
    for code in (lead, first, second):
        assert message_ids(amqp_url, topology.queue(code)) == [f"{number}:1:{code}:rabbitmq"]


def test_a_dispatch_to_lead_and_assisting_departments_is_one_outbox_task(
    database: Database, topology: Topology
) -> None:
    lead, assisting = topology.code("roads"), topology.code("police")
    add_department(database, lead)
    add_department(database, assisting)
    settings = Settings.model_construct(delivery_amqp_url="amqp://broker.invalid//")
    with database.session() as session:
        order, _ = receive_appeal(
            db_session=session, appeal=AppealInput(channel="web", text="占道")
        )
        order.department_code = lead
        order.assisting_department_codes = [assisting, "no-such-department"]
        act(db_session=session, work_order=order, action="dispatch", actor="a1", role="agent")
        rows = record_deliveries(db_session=session, work_order=order, settings=settings)
        assert [row.department_code for row in rows] == [lead, assisting]
        again = record_deliveries(db_session=session, work_order=order, settings=settings)
        assert [row.id for row in again] == [row.id for row in rows]
        messages = session.scalars(select(outbox.OutboxMessage)).all()
        assert [(m.task, m.kwargs) for m in messages] == [
            ("dispatch.deliver_batch", {"delivery_ids": [row.id for row in rows]})
        ]


def test_a_batch_that_fails_halfway_keeps_what_went_out_and_hands_on_the_rest(
    database: Database, amqp_url: str, topology: Topology
) -> None:
    lead, nobody = topology.code("roads"), topology.code("nobody")
    add_department(database, lead)
    add_department(database, nobody)
    with database.session() as session:
        order, _ = receive_appeal(
            db_session=session, appeal=AppealInput(channel="web", text="井盖丢失")
        )
        order.department_code = lead
        act(db_session=session, work_order=order, action="dispatch", actor="a1", role="agent")
        rows = delivery.record_dispatch_many(
            db_session=session,
            work_order=order,
            channels={lead: ("rabbitmq",), nobody: ("rabbitmq",)},
        )
        ids = [row.id for row in rows]
        number = order.number
    with topology.publisher(amqp_url, declare_queues=False) as publisher:
        declare_queue(
            amqp_url, topology, lead
        )  # nobody's queue does not exist: unroutable, transient
        worker = Worker(database, publisher)
        worker.relay()
        assert worker.tasks == [ids]
        worker.run()
        assert worker.transient_failures == 0
        assert worker.tasks == []
        with database.session() as session:
            statuses = {
                row.department_code: row.status for row in session.scalars(select(Delivery))
            }
            assert statuses == {lead: "sent", nobody: "pending"}
        worker.relay()
        assert worker.tasks == [[ids[1]]]  # only the unsent one, in a task of its own
        declare_queue(amqp_url, topology, nobody)
        worker.run()
    assert message_ids(amqp_url, topology.queue(lead)) == [f"{number}:1:{lead}:rabbitmq"]
    assert message_ids(amqp_url, topology.queue(nobody)) == [f"{number}:1:{nobody}:rabbitmq"]


@pytest.mark.slow
def test_appeals_arriving_while_the_broker_is_down_are_each_delivered_once(
    database: Database, proxy: tuple[BrokerProxy, str], amqp_url: str, topology: Topology
) -> None:
    broker, url = proxy
    code = topology.code("transport")
    add_department(database, code)
    with topology.publisher(url) as publisher:
        worker = Worker(database, publisher)
        numbers = [dispatch(database, code, "公交晚点")]
        worker.run()
        broker.stop()
        numbers += [dispatch(database, code, f"公交晚点 {i}") for i in range(4)]
        worker.run()
        worker.run()  # retried while still down
        assert worker.transient_failures == 8
        with database.session() as session:
            pending = session.scalars(select(Delivery).where(Delivery.status == "pending")).all()
            assert len(pending) == 4
        broker.start()
        worker.run()
        worker.run()
        assert worker.tasks == []
    ids = message_ids(amqp_url, topology.queue(code))
    assert sorted(ids) == sorted(f"{number}:1:{code}:rabbitmq" for number in numbers)


class Killed(BaseException):
    """The worker process died: nothing after this point runs, and nothing is committed."""


def test_a_worker_killed_after_publishing_resends_the_same_message_id(
    database: Database, amqp_url: str, topology: Topology
) -> None:
    code = topology.code("health")
    add_department(database, code)
    number = dispatch(database, code, "医院乱收费")
    with topology.publisher(amqp_url) as publisher:
        worker = Worker(database, publisher)
        worker.relay()
        ((delivery_id,),) = worker.tasks
        with pytest.raises(Killed), database.session() as session:
            delivery.deliver(
                db_session=session, delivery_id=delivery_id, publisher=publisher, http_client=None
            )
            raise Killed
        worker.run()  # the broker redelivers the unacknowledged task
    with database.session() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None and row.status == "sent"
    # The department sees the same id twice and keeps one: that is its side of exactly-once.
    assert message_ids(amqp_url, topology.queue(code)) == [f"{number}:1:{code}:rabbitmq"] * 2


def test_unroutable_delivery_is_dead_lettered_on_its_last_attempt(
    database: Database, amqp_url: str, topology: Topology
) -> None:
    code = topology.code("nobody")
    add_department(database, code)
    dispatch(database, code, "无人接收")
    with topology.publisher(amqp_url, declare_queues=False) as publisher:
        worker = Worker(database, publisher)
        worker.relay()
        ((delivery_id,),) = worker.tasks
        with pytest.raises(UnroutableError), database.session() as session:
            delivery.deliver(
                db_session=session,
                delivery_id=delivery_id,
                publisher=publisher,
                http_client=None,
                attempt=1,
                max_attempts=2,
            )
        with database.session() as session:
            row = delivery.deliver(
                db_session=session,
                delivery_id=delivery_id,
                publisher=publisher,
                http_client=None,
                attempt=2,
                max_attempts=2,
            )
            assert row is not None and row.status == "failed"
    with database.session() as session:
        (letter,) = delivery.list_dead_letters(db_session=session, kind="delivery")
        assert "no queue is bound" in letter.reason
        assert letter.reference.endswith(f":{code}:rabbitmq")


# --- the reference department consumer ------------------------------------------------------


def test_department_consumer_acks_only_after_its_handler_returns(
    proxy: tuple[BrokerProxy, str], amqp_url: str, topology: Topology
) -> None:
    broker, url = proxy
    code = topology.code("consumer")
    seen: list[DepartmentMessage] = []
    stored: set[str] = set()
    failures = {"m1": 1}  # the first attempt at m1 fails (e.g. the department's database)

    def handler(message: DepartmentMessage) -> None:
        seen.append(message)
        if failures.get(message.delivery_id, 0):
            failures[message.delivery_id] -= 1
            raise RuntimeError("department database unavailable")
        stored.add(message.delivery_id)

    stop = threading.Event()
    thread = threading.Thread(
        target=consume_department,
        args=(url, code, handler),
        kwargs={
            "stop_event": stop,
            "exchange": topology.exchange,
            "dead_letter_exchange": topology.dead_letter_exchange,
            "dead_letter_queue": topology.dead_letter_queue,
            "retry_delay": 0.05,
        },
    )
    thread.start()
    queue = topology.queue(code)
    with topology.publisher(amqp_url) as publisher:
        publisher.publish(code, b'{"n": 1}', message_id="m1")
        assert wait_for(lambda: stored == {"m1"})
        broker.drop_connections()  # the consumer reconnects by itself
        publisher.publish(code, b'{"n": 2}', message_id="m2")
        publisher.publish(code, b"not json", message_id="m3")
        assert wait_for(lambda: stored == {"m1", "m2"})
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert [message.delivery_id for message in seen] == ["m1", "m1", "m2"]
    assert seen[1].redelivered and seen[1].payload == {"n": 1}
    assert drain(amqp_url, queue) == []
    assert wait_for(lambda: queue_length(amqp_url, topology.dead_letter_queue) == 1)
    ((properties, body),) = drain(amqp_url, topology.dead_letter_queue)
    assert body == b"not json"
    assert properties.headers["x-death"][0]["reason"] == "rejected"
