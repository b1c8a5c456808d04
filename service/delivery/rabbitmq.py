"""RabbitMQ delivery of dispatched work orders (pika), and the consume loop our consumers share.

Topology (all durable; declared idempotently by the publisher and by consumers)::

    hotline.work_orders   topic exchange   routing key dept.<code> -> queue dept.<code>
    hotline.dead          topic exchange   dead letters, routed by the key of the queue they left
    hotline.work_orders.dead  queue bound to hotline.dead with dept.#: every department's
                              rejected or crash-looping message (x-death says why)

The queues are quorum queues (replicated, with a delivery limit) unless
`HOTLINE_RABBITMQ_QUEUE_TYPE=classic` (see `queue_arguments`).

`<code>` is the department code with every character outside `[A-Za-z0-9_-]` percent-encoded
(UTF-8), so that `.`, `*` and `#` in a code can neither split the key nor act as a wildcard in a
binding: `dept.a.b` could otherwise receive what was meant for `dept.a#b`.

Messages are persistent (delivery_mode 2), `application/json` in UTF-8, published as mandatory
on a channel in confirm mode: `publish()` returns only once the broker has the message, and a
message that no queue would take is an `UnroutableError`. `message_id` is the delivery id;
consumers deduplicate on it, because a publisher killed between the broker's confirm and its
own commit publishes the same delivery again.

pika connections are not thread-safe: use one publisher per process (or per thread).
"""

from __future__ import annotations

import json
import logging
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    ChannelClosedByBroker,
    ConsumerCancelled,
    NackError,
)
from pika.exceptions import UnroutableError as PikaUnroutableError
from pika.spec import Basic, BasicProperties

from service.delivery.errors import (
    PermanentDeliveryError,
    TransientDeliveryError,
    UnroutableError,
)

__all__ = [
    "DEAD_LETTER_EXCHANGE",
    "DEPARTMENT_DEAD_QUEUE",
    "EXCHANGE",
    "DepartmentMessage",
    "DepartmentPublisher",
    "MessageHandler",
    "QueueType",
    "connection_parameters",
    "consume_department",
    "consume_queue",
    "declare_dead_letter_queue",
    "declare_department_queue",
    "department_queue",
    "escape_code",
    "queue_arguments",
    "routing_key",
]

log = logging.getLogger(__name__)

QueueType = Literal["quorum", "classic"]
"""RabbitMQ queue type of our queues (`HOTLINE_RABBITMQ_QUEUE_TYPE`)."""

EXCHANGE = "hotline.work_orders"
DEAD_LETTER_EXCHANGE = "hotline.dead"
DEPARTMENT_DEAD_QUEUE = "hotline.work_orders.dead"
ROUTING_PREFIX = "dept."
DEPARTMENT_DELIVERY_LIMIT = 10
"""Deliveries of one message to department consumers before the broker dead-letters it."""

# The broker answers these when the topology itself is wrong (access refused, not found,
# declared before with other arguments): reconnecting cannot fix them.
TOPOLOGY_REPLY_CODES = frozenset({403, 404, 406})
_SAFE = frozenset(string.ascii_letters + string.digits + "_-")
_MAX_NAME_BYTES = 255

MessageHandler = Callable[[BlockingChannel, Basic.Deliver, BasicProperties, bytes], None]
"""Handles one delivery on the consume loop and acks, nacks or rejects it itself."""


def escape_code(department_code: str) -> str:
    """The code as one topic word: characters outside `[A-Za-z0-9_-]` become `%XX` (UTF-8)."""
    if not department_code:
        raise ValueError("a department code must not be empty")
    return "".join(
        char if char in _SAFE else "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
        for char in department_code
    )


def routing_key(department_code: str) -> str:
    """`dept.<escaped code>`: the routing key of a department, and the name of its queue."""
    key = ROUTING_PREFIX + escape_code(department_code)
    if len(key.encode("ascii")) > _MAX_NAME_BYTES:
        raise ValueError(f"department code {department_code!r} is too long for a routing key")
    return key


department_queue = routing_key


def connection_parameters(
    url: str, *, connect_timeout: float = 5.0, name: str = "hotline-router"
) -> pika.URLParameters:
    """Parameters for one connection attempt that fails fast instead of hanging.

    The virtual host is read as kombu (and Celery's broker URL) reads it, so that one URL serves
    both: `amqp://host//` and `amqp://host/%2F` are the vhost `/` (pika alone reads `//` as
    the empty vhost).
    """
    parameters = pika.URLParameters(url)
    path = urlsplit(url).path
    parameters.virtual_host = unquote(path[1:]) if len(path) > 1 else "/"
    parameters.connection_attempts = 1
    parameters.socket_timeout = connect_timeout
    parameters.stack_timeout = connect_timeout * 2
    if parameters.blocked_connection_timeout is None:
        # A broker under a memory or disk alarm blocks publishers; give up rather than hang.
        parameters.blocked_connection_timeout = 30.0
    parameters.client_properties = {"connection_name": name}
    return parameters


def declare_dead_letter_queue(
    channel: BlockingChannel,
    queue: str,
    binding_key: str,
    *,
    dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
    queue_type: QueueType = "quorum",
) -> None:
    """The dead-letter exchange and one durable queue (quorum by default) that collects from it."""
    channel.exchange_declare(dead_letter_exchange, exchange_type="topic", durable=True)
    arguments = {"x-queue-type": "quorum"} if queue_type == "quorum" else None
    channel.queue_declare(queue, durable=True, arguments=arguments)
    channel.queue_bind(queue, dead_letter_exchange, routing_key=binding_key)


def queue_arguments(
    *,
    dead_letter_exchange: str,
    dead_letter_routing_key: str,
    delivery_limit: int,
    queue_type: QueueType = "quorum",
) -> dict[str, Any]:
    """Queue arguments of a queue that dead-letters what it rejects or cannot deliver.

    A classic queue (`HOTLINE_RABBITMQ_QUEUE_TYPE=classic`, for brokers whose queues were
    declared classic before) dead-letters rejected messages too, but has no delivery limit: a
    message its consumer crashes on is redelivered until someone removes it."""
    if queue_type == "classic":
        return {
            "x-dead-letter-exchange": dead_letter_exchange,
            "x-dead-letter-routing-key": dead_letter_routing_key,
            "x-overflow": "reject-publish",
        }
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": dead_letter_exchange,
        "x-dead-letter-routing-key": dead_letter_routing_key,
        # Each message is redelivered at most this often (a consumer that crashes on it).
        "x-delivery-limit": delivery_limit,
        # Dead-letter with confirms inside the broker, so nothing is lost on the way.
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def declare_department_queue(
    channel: BlockingChannel,
    department_code: str,
    *,
    exchange: str = EXCHANGE,
    dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
    dead_letter_queue: str = DEPARTMENT_DEAD_QUEUE,
    delivery_limit: int = DEPARTMENT_DELIVERY_LIMIT,
    queue_type: QueueType = "quorum",
) -> str:
    """Declare the exchanges, the department's durable queue (quorum unless `queue_type` says
    classic) and its binding.

    Rejected messages (and messages redelivered more than `delivery_limit` times) go to
    `dead_letter_queue`. Returns the queue name. Idempotent, as long as every caller passes the
    same arguments (the broker refuses a redeclaration with different ones).
    """
    key = routing_key(department_code)
    channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    declare_dead_letter_queue(
        channel,
        dead_letter_queue,
        ROUTING_PREFIX + "#",
        dead_letter_exchange=dead_letter_exchange,
        queue_type=queue_type,
    )
    channel.queue_declare(
        key,
        durable=True,
        arguments=queue_arguments(
            dead_letter_exchange=dead_letter_exchange,
            dead_letter_routing_key=key,
            delivery_limit=delivery_limit,
            queue_type=queue_type,
        ),
    )
    channel.queue_bind(key, exchange, routing_key=key)
    return key


PUBLISH_ATTEMPTS = 3
"""A publish tries the open channel, then a new connection, then one more after a pause."""
RECONNECT_PAUSE_SECONDS = 0.5


class DepartmentPublisher:
    """Publishes work-order messages to departments' queues with publisher confirms.

    Connects on first use and reconnects once per publish when the connection was lost. With
    `declare_queues` (the default) it declares a department's queue before its first message,
    so orders wait in the queue for a department that has never connected; without it, a
    department must declare its own queue and a message nobody is bound for is unroutable.
    """

    def __init__(
        self,
        url: str,
        *,
        exchange: str = EXCHANGE,
        dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
        dead_letter_queue: str = DEPARTMENT_DEAD_QUEUE,
        declare_queues: bool = True,
        connect_timeout: float = 5.0,
        app_id: str = "hotline-router",
        queue_type: QueueType = "quorum",
    ) -> None:
        self.url = url
        self.queue_type = queue_type
        self.exchange = exchange
        self.dead_letter_exchange = dead_letter_exchange
        self.dead_letter_queue = dead_letter_queue
        self.declare_queues = declare_queues
        self.connect_timeout = connect_timeout
        self.app_id = app_id
        self._connection: BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._declared: set[str] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> DepartmentPublisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def publish(
        self,
        department_code: str,
        body: bytes,
        *,
        message_id: str,
        correlation_id: str | None = None,
        message_type: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish one persistent message and wait for the broker's confirm.

        Raises `UnroutableError` when no queue is bound for the department, `TransientDeliveryError`
        when the broker is unreachable or refuses the message, and `PermanentDeliveryError` when
        the broker rejects our topology (access refused, queue declared with other arguments).
        """
        key = routing_key(department_code)
        properties = BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=message_id,
            correlation_id=correlation_id,
            type=message_type,
            timestamp=int(time.time()),
            app_id=self.app_id,
            headers=dict(headers or {}),
        )
        with self._lock:
            for attempt in range(1, PUBLISH_ATTEMPTS + 1):
                if attempt == PUBLISH_ATTEMPTS:
                    time.sleep(RECONNECT_PAUSE_SECONDS)  # a broker restarting or a link settling
                try:
                    channel = self._ensure_channel()
                    if self.declare_queues and key not in self._declared:
                        declare_department_queue(
                            channel,
                            department_code,
                            exchange=self.exchange,
                            dead_letter_exchange=self.dead_letter_exchange,
                            dead_letter_queue=self.dead_letter_queue,
                            queue_type=self.queue_type,
                        )
                        self._declared.add(key)
                    channel.basic_publish(
                        self.exchange, key, body, properties=properties, mandatory=True
                    )
                    return
                except PikaUnroutableError as exc:
                    self._declared.discard(key)
                    raise UnroutableError(
                        f"no queue is bound to {self.exchange!r} with routing key {key!r}"
                    ) from exc
                except NackError as exc:
                    raise TransientDeliveryError(
                        f"the broker refused message {message_id}"
                    ) from exc
                except ChannelClosedByBroker as exc:
                    self._reset()
                    if exc.reply_code in TOPOLOGY_REPLY_CODES:
                        raise PermanentDeliveryError(
                            f"the broker refused our topology for {key!r}: "
                            f"{exc.reply_code} {exc.reply_text}"
                        ) from exc
                    if attempt == PUBLISH_ATTEMPTS:
                        raise TransientDeliveryError(f"channel closed: {exc}") from exc
                except (AMQPConnectionError, AMQPChannelError, OSError) as exc:
                    self._reset()
                    if attempt == PUBLISH_ATTEMPTS:
                        raise TransientDeliveryError(
                            f"RabbitMQ unreachable: {type(exc).__name__}: {exc}"
                        ) from exc
                    log.info("publisher: connection lost (%s); reconnecting", type(exc).__name__)

    def close(self) -> None:
        with self._lock:
            self._reset()

    def _ensure_channel(self) -> BlockingChannel:
        if self._channel is not None and self._channel.is_open:
            return self._channel
        self._reset()
        try:
            self._connection = BlockingConnection(
                connection_parameters(self.url, connect_timeout=self.connect_timeout)
            )
        except ValueError as exc:
            # pika's connection workflow raises ValueError when the socket is dropped between
            # the TCP connect and the AMQP handshake ("Expected connected socket"): a lost
            # connection like any other, not a bug of ours.
            raise AMQPConnectionError(f"connection dropped while opening: {exc}") from exc
        channel = self._connection.channel()
        channel.confirm_delivery()
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        self._channel = channel
        return channel

    def _reset(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        self._declared.clear()
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # already broken: nothing left to release
                log.debug("publisher: error while closing a broken connection", exc_info=True)


def consume_queue(
    url: str,
    queue: str,
    handle: MessageHandler,
    *,
    stop_event: threading.Event,
    declare: Callable[[BlockingChannel], object] | None = None,
    prefetch: int = 1,
    poll_seconds: float = 0.5,
    reconnect_delay: float = 1.0,
    max_reconnect_delay: float = 30.0,
    name: str = "hotline-consumer",
) -> None:
    """Consume `queue` until `stop_event` is set, reconnecting with backoff when the broker goes.

    `declare(channel)` runs after every (re)connect, before consuming. `handle` acks or nacks
    each message itself; a message it has not acked when the connection drops is redelivered.
    Errors in our topology (access refused, arguments that do not match) are raised.
    """
    delay = reconnect_delay
    while not stop_event.is_set():
        connection: BlockingConnection | None = None
        try:
            connection = BlockingConnection(connection_parameters(url, name=name))
            channel = connection.channel()
            if declare is not None:
                declare(channel)
            channel.basic_qos(prefetch_count=prefetch)
            log.info("consumer %s: consuming %s", name, queue)
            delay = reconnect_delay
            for method, properties, body in channel.consume(queue, inactivity_timeout=poll_seconds):
                if stop_event.is_set():
                    break
                if method is None or properties is None or body is None:
                    continue
                handle(channel, method, properties, body)
            if channel.is_open:
                channel.cancel()  # unacked prefetched messages go back to the queue
        except ChannelClosedByBroker as exc:
            if exc.reply_code in TOPOLOGY_REPLY_CODES:
                raise
            log.warning("consumer %s: channel closed (%s); reconnecting", name, exc)
        except (AMQPConnectionError, ConsumerCancelled, OSError) as exc:
            log.warning(
                "consumer %s: %s: %s; reconnecting in %.1fs", name, type(exc).__name__, exc, delay
            )
        finally:
            if connection is not None and connection.is_open:
                try:
                    connection.close()
                except Exception:
                    log.debug("consumer %s: error while closing", name, exc_info=True)
        if not stop_event.is_set():
            stop_event.wait(delay)
            delay = min(delay * 2, max_reconnect_delay)


@dataclass(frozen=True, kw_only=True)
class DepartmentMessage:
    """One work-order message as a department's consumer sees it."""

    delivery_id: str
    payload: dict[str, Any]
    routing_key: str
    redelivered: bool


def consume_department(
    url: str,
    department_code: str,
    handler: Callable[[DepartmentMessage], None],
    *,
    stop_event: threading.Event,
    exchange: str = EXCHANGE,
    dead_letter_exchange: str = DEAD_LETTER_EXCHANGE,
    dead_letter_queue: str = DEPARTMENT_DEAD_QUEUE,
    retry_delay: float = 1.0,
    queue_type: QueueType = "quorum",
) -> None:
    """The reference department client: call `handler` for each message, ack after it returns.

    The handler must be idempotent on `delivery_id` (store it with the order and skip ids it has
    seen): a message can arrive twice. A body that is not a JSON object is rejected to the
    dead-letter queue; when the handler raises, the message is requeued after `retry_delay`
    (and dead-lettered by the broker after its delivery limit).
    """

    def declare(channel: BlockingChannel) -> None:
        declare_department_queue(
            channel,
            department_code,
            exchange=exchange,
            dead_letter_exchange=dead_letter_exchange,
            dead_letter_queue=dead_letter_queue,
            queue_type=queue_type,
        )

    def handle(
        channel: BlockingChannel, method: Basic.Deliver, properties: BasicProperties, body: bytes
    ) -> None:
        try:
            payload = json.loads(body.decode("utf-8"))
            if not isinstance(payload, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError:
            log.error("department %s: rejecting a malformed message", department_code)
            channel.basic_nack(method.delivery_tag, requeue=False)
            return
        message = DepartmentMessage(
            delivery_id=properties.message_id or str(payload.get("delivery_id", "")),
            payload=payload,
            routing_key=method.routing_key or "",
            redelivered=bool(method.redelivered),
        )
        try:
            handler(message)
        except Exception:
            log.exception("department %s: handler failed; requeueing", department_code)
            channel.basic_nack(method.delivery_tag, requeue=True)
            stop_event.wait(retry_delay)
            return
        channel.basic_ack(method.delivery_tag)

    consume_queue(
        url,
        routing_key(department_code),
        handle,
        stop_event=stop_event,
        declare=declare,
        name=f"department-{escape_code(department_code)}",
    )
