"""`HOTLINE_RABBITMQ_QUEUE_TYPE` decides the type of the Celery queues and of the department
queues on the real RabbitMQ (quorum by default, classic on request), and a classic department
queue still delivers and dead-letters. Queue and exchange names are unique per test: the broker
is shared, and our real queue names must keep the type the other tests expect."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pika
import pytest
from kombu import Connection, Exchange, Queue
from pika.exceptions import ChannelClosedByBroker

from service.config import Settings
from service.delivery.rabbitmq import (
    DEPARTMENT_DELIVERY_LIMIT,
    DepartmentPublisher,
    connection_parameters,
    declare_department_queue,
    queue_arguments,
    routing_key,
)
from service.worker.factory import QUEUES, build_queues
from tests.support import drain


def broker_queue_type(url: str, name: str, arguments: dict[str, object] | None) -> str:
    """What the broker says the queue is: redeclaring it as a quorum queue (otherwise with the
    same arguments) is accepted for a quorum queue and refused for a classic one."""
    connection = pika.BlockingConnection(connection_parameters(url))
    try:
        connection.channel().queue_declare(
            name, durable=True, arguments={**(arguments or {}), "x-queue-type": "quorum"}
        )
        return "quorum"
    except ChannelClosedByBroker as exc:
        assert exc.reply_code == 406 and "x-queue-type" in exc.reply_text, exc.reply_text
        return "classic"
    finally:
        connection.close()


@pytest.fixture
def names(amqp_url: str) -> Iterator[list[str]]:
    """Queues and exchanges a test creates; deleted afterwards."""
    created: list[str] = []
    yield created
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    for name in created:
        channel = connection.channel()
        if name.startswith("ex:"):
            channel.exchange_delete(name[3:])
        else:
            channel.queue_delete(name)
    connection.close()


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_the_celery_queues_have_the_configured_type(
    amqp_url: str, queue_type: str, names: list[str]
) -> None:
    settings = Settings(broker_url=amqp_url, rabbitmq_queue_type=queue_type)
    prefix = f"qt-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(prefix, type="direct", durable=True)
    names.append(f"ex:{prefix}")
    queues = build_queues(settings)
    assert [queue.name for queue in queues] == list(QUEUES)
    with Connection(amqp_url) as connection:
        channel = connection.default_channel
        for queue in queues:
            # The same declaration kombu makes for the worker, under a private name.
            private = Queue(
                f"{prefix}-{queue.name}",
                exchange,
                routing_key=queue.routing_key,
                durable=queue.durable,
                queue_arguments=queue.queue_arguments,
            )
            names.append(private.name)
            private(channel).declare()
    for queue in queues:
        name = f"{prefix}-{queue.name}"
        assert broker_queue_type(amqp_url, name, queue.queue_arguments) == queue_type


def test_redeclaring_a_classic_queue_as_quorum_is_refused(amqp_url: str, names: list[str]) -> None:
    """Why a broker whose queues are classic needs the setting (or a migration, see
    docs/deployment.md): the broker refuses the other type."""
    code = f"qt-{uuid.uuid4().hex[:8]}"
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    try:
        declare = dict(dead_letter_exchange=f"{code}.dead", dead_letter_queue=f"{code}.dead.q")
        names.extend([routing_key(code), f"{code}.dead.q", f"ex:{code}.dead"])
        declare_department_queue(connection.channel(), code, queue_type="classic", **declare)
        with pytest.raises(ChannelClosedByBroker) as refused:
            declare_department_queue(connection.channel(), code, queue_type="quorum", **declare)
        assert refused.value.reply_code == 406
    finally:
        connection.close()


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_department_queues_have_the_configured_type_and_deliver(
    amqp_url: str, queue_type: str, names: list[str]
) -> None:
    code = f"qt-{uuid.uuid4().hex[:8]}"
    dead_exchange, dead_queue = f"{code}.dead", f"{code}.dead.q"
    names.extend([routing_key(code), dead_queue, f"ex:{dead_exchange}"])
    with DepartmentPublisher(
        amqp_url,
        dead_letter_exchange=dead_exchange,
        dead_letter_queue=dead_queue,
        queue_type=queue_type,  # type: ignore[arg-type]
    ) as publisher:
        publisher.publish(code, b'{"n": 1}', message_id="m-1")
        publisher.publish(code, b'{"n": 2}', message_id="m-2")
    queue = routing_key(code)
    connection = pika.BlockingConnection(connection_parameters(amqp_url))
    try:
        channel = connection.channel()
        method, properties, _ = channel.basic_get(queue)
        assert properties.message_id == "m-1"
        channel.basic_nack(method.delivery_tag, requeue=False)  # rejected: dead-lettered
    finally:
        connection.close()
    assert [p.message_id for p, _ in drain(amqp_url, queue)] == ["m-2"]
    assert [p.message_id for p, _ in drain(amqp_url, dead_queue)] == ["m-1"]
    expected_arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else None
    assert broker_queue_type(amqp_url, dead_queue, expected_arguments) == queue_type
    arguments = queue_arguments(
        dead_letter_exchange=dead_exchange,
        dead_letter_routing_key=queue,
        delivery_limit=DEPARTMENT_DELIVERY_LIMIT,
        queue_type=queue_type,  # type: ignore[arg-type]
    )
    assert broker_queue_type(amqp_url, queue, arguments) == queue_type
