"""Signed HTTP delivery of dispatched work orders to departments that receive them by webhook.

The request is `POST <webhook_url>` with the JSON message as body and these headers:

    Content-Type: application/json; charset=utf-8
    X-Hotline-Delivery: <delivery id>              the same for every retry: deduplicate on it
    X-Hotline-Timestamp: <unix seconds>
    X-Hotline-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>
    X-Request-ID: <request id>                     the request that dispatched it, when known

A 2xx answer is success. Timeouts, connection errors, 408, 425, 429 and 5xx raise
`TransientDeliveryError` (retried with backoff by the task); any other answer raises
`PermanentDeliveryError` (dead-lettered). Redirects are not followed: a moved endpoint is a
configuration error that a supervisor should see.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import httpx

from service.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from service.delivery.messages import encode

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "deliver_webhook",
    "department_secret",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Hotline-Signature"
TIMESTAMP_HEADER = "X-Hotline-Timestamp"
DELIVERY_HEADER = "X-Hotline-Delivery"
REQUEST_ID_HEADER = "X-Request-ID"
RETRYABLE_STATUS = frozenset({408, 425, 429})


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def sign(secret: str | bytes, timestamp: int | str, body: str | bytes) -> str:
    """Hex HMAC-SHA256 over `f"{timestamp}.{body}"` (the body exactly as sent, UTF-8)."""
    message = f"{timestamp}.".encode("ascii") + _bytes(body)
    return hmac.new(_bytes(secret), message, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | bytes,
    timestamp: str,
    body: str | bytes,
    signature: str,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiving department checks: a valid signature on a recent timestamp.

    `signature` is the header value (`sha256=<hex>`, or the bare hex). Old timestamps are
    refused so that a captured request cannot be replayed later.
    """
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, signature.removeprefix("sha256="))


def department_secret(signing_key: str, department_code: str) -> str:
    """The webhook secret of one department, derived from the service's signing key.

    Derived rather than stored, so that every department has its own secret without a table of
    secrets; rotating the signing key rotates them all.
    """
    return hmac.new(
        signing_key.encode("utf-8"), f"webhook:{department_code}".encode(), hashlib.sha256
    ).hexdigest()


def deliver_webhook(
    url: str,
    payload: Mapping[str, Any],
    secret: str,
    *,
    client: httpx.Client,
    timeout: float = 10.0,
    delivery_id: str = "",
    now: float | None = None,
    request_id: str | None = None,
) -> int:
    """POST one signed message; returns the 2xx status or raises a `DeliveryError`."""
    body = encode(payload)
    timestamp = str(int(time.time() if now is None else now))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"sha256={sign(secret, timestamp, body)}",
    }
    if delivery_id:
        headers[DELIVERY_HEADER] = delivery_id
    if request_id:
        headers[REQUEST_ID_HEADER] = request_id
    try:
        response = client.post(url, content=body, headers=headers, timeout=timeout)
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PermanentDeliveryError(f"webhook URL {url!r} is not usable: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise TransientDeliveryError(f"webhook {url} timed out after {timeout:g}s") from exc
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"webhook {url} unreachable: {exc}") from exc
    status = response.status_code
    if 200 <= status < 300:
        return status
    detail = f"webhook {url} answered {status}: {response.text[:200]!r}"
    if status >= 500 or status in RETRYABLE_STATUS:
        raise TransientDeliveryError(detail)
    raise PermanentDeliveryError(detail)
