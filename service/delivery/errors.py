"""Why a delivery to a department failed, and whether trying again can help.

Hierarchy::

    DeliveryError                       base class; never raised itself
    ├── TransientDeliveryError          also a ConnectionError: the task decorator retries it
    │   └── UnroutableError             no department queue is bound to the routing key (yet)
    └── PermanentDeliveryError          retrying cannot help (4xx, bad URL): dead-letter it
"""

from __future__ import annotations

__all__ = [
    "DeliveryError",
    "PermanentDeliveryError",
    "TransientDeliveryError",
    "UnroutableError",
]


class DeliveryError(Exception):
    """A work order could not be handed to a department."""


class TransientDeliveryError(DeliveryError, ConnectionError):
    """The broker or the department's endpoint is unreachable, overloaded or timed out.

    It is a `ConnectionError` on purpose: `hotline_task` retries those with exponential backoff.
    """


class UnroutableError(TransientDeliveryError):
    """The broker returned a mandatory message: no queue is bound for the department.

    Transient because a department's queue may be declared after the order was dispatched; if it
    never is, the retries run out and the delivery is dead-lettered with this message.
    """


class PermanentDeliveryError(DeliveryError):
    """The endpoint refused the delivery in a way that retrying will not change."""
