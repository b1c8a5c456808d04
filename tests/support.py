"""Helpers shared by tests that wait on other processes or read RabbitMQ queues."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pika

from service.delivery.rabbitmq import connection_parameters

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 8.0, interval: float = 0.05) -> T | None:
    """Poll `predicate` until it returns something truthy (returned), or None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def drain(url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Take every message off a queue (acking it)."""
    connection = pika.BlockingConnection(connection_parameters(url))
    channel = connection.channel()
    messages = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        messages.append((properties, body))
    connection.close()
    return messages


def queue_length(url: str, queue: str) -> int:
    connection = pika.BlockingConnection(connection_parameters(url))
    count = connection.channel().queue_declare(queue, passive=True).method.message_count
    connection.close()
    return int(count)
