"""Callback providers: who places a satisfaction call and how its result comes back.

Two implementations of :class:`CallbackProvider`:

* :class:`AgentQueueProvider` (``agent``): nothing is placed automatically; the callback waits in
  the agents' queue (``GET /api/v1/callbacks?status=due``) and an agent posts the result
  (``POST /api/v1/callbacks/{id}/result``).
* :class:`GatewayProvider` (``gateway``): an SMS/IVR gateway over HTTP. The request is
  ``POST <HOTLINE_CALLBACK_GATEWAY_URL>`` with a JSON body signed like department webhooks
  (``X-Hotline-Timestamp``, ``X-Hotline-Signature: sha256=<HMAC of "timestamp.body">``,
  ``X-Hotline-Delivery: <request_id>`` to deduplicate on). The gateway answers either
  ``200 {"result": "<outcome>"}`` (synchronous: the call is over) or ``202`` (asynchronous: it
  reports later to ``POST /api/v1/callbacks/gateway/report``, signed with the same secret).

Errors: timeouts, connection errors, 408/425/429/5xx raise :class:`TransientDeliveryError` (the
call was not placed; it is tried again later); other answers raise
:class:`PermanentDeliveryError` (the callback is handed to the agents' queue).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from router.workorders.workflow import CallbackOutcome
from service.delivery.errors import PermanentDeliveryError, TransientDeliveryError
from service.delivery.messages import encode
from service.delivery.webhook import (
    DELIVERY_HEADER,
    RETRYABLE_STATUS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

__all__ = [
    "REQUEST_TYPE",
    "AgentQueueProvider",
    "CallRequest",
    "CallbackProvider",
    "GatewayProvider",
    "gateway_secret",
]

REQUEST_TYPE = "callback.request"


@dataclass(frozen=True, kw_only=True)
class CallRequest:
    """One call to place: ``request_id`` (``cb-<callback id>-<attempt>``) is the same on a
    redelivered task, so the gateway can deduplicate on it."""

    callback_id: int
    attempt: int
    phone: str
    work_order_number: str
    reply_summary: str

    @property
    def request_id(self) -> str:
        return f"cb-{self.callback_id}-{self.attempt}"

    def to_dict(self, report_url: str = "") -> dict[str, Any]:
        return {
            "type": REQUEST_TYPE,
            "version": 1,
            "request_id": self.request_id,
            "callback_id": self.callback_id,
            "attempt": self.attempt,
            "phone": self.phone,
            "work_order_number": self.work_order_number,
            "reply_summary": self.reply_summary,
            "outcomes": [outcome.value for outcome in CallbackOutcome],
            "report_url": report_url,
        }


class CallbackProvider(Protocol):
    """Places a call; returns the outcome when it is known at once, None when it comes later."""

    name: str

    def place(self, request: CallRequest) -> str | None: ...


class AgentQueueProvider:
    """Callbacks worked by agents through the API: placing one only leaves it in the queue."""

    name = "agent"

    def place(self, request: CallRequest) -> str | None:
        return None


def gateway_secret(signing_key: str) -> str:
    """The HMAC secret shared with the gateway, derived from the service's signing key."""
    return hmac.new(signing_key.encode("utf-8"), b"callback-gateway", hashlib.sha256).hexdigest()


class GatewayProvider:
    """An SMS/IVR gateway over HTTP (see the module docstring for the protocol)."""

    name = "gateway"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        client: httpx.Client,
        timeout: float = 10.0,
        report_url: str = "",
    ) -> None:
        self.url = url
        self.secret = secret
        self.client = client
        self.timeout = timeout
        self.report_url = report_url

    def place(self, request: CallRequest) -> str | None:
        body = encode(request.to_dict(self.report_url))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: f"sha256={sign(self.secret, timestamp, body)}",
            DELIVERY_HEADER: request.request_id,
        }
        try:
            response = self.client.post(
                self.url, content=body, headers=headers, timeout=self.timeout
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentDeliveryError(f"gateway URL {self.url!r} is not usable: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise TransientDeliveryError(f"gateway {self.url} timed out") from exc
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"gateway {self.url} unreachable: {exc}") from exc
        status = response.status_code
        if status == 202:
            return None
        if status == 200:
            return _outcome(response)
        detail = f"gateway {self.url} answered {status}: {response.text[:200]!r}"
        if status >= 500 or status in RETRYABLE_STATUS:
            raise TransientDeliveryError(detail)
        raise PermanentDeliveryError(detail)


def _outcome(response: httpx.Response) -> str:
    try:
        value = json.loads(response.content).get("result")
        return CallbackOutcome(value).value
    except (ValueError, AttributeError, TypeError):
        raise PermanentDeliveryError(
            f"gateway answered 200 without a valid result: {response.text[:200]!r}"
        ) from None
