"""`GET /metrics` (Prometheus text) behind `HOTLINE_METRICS_TOKEN`, and the middleware that gives
every request an id and times it.

`/metrics` answers 404 while no token is set (serve it on `HOTLINE_METRICS_PORT` instead, see
`service.observability.exporter`) and 401 without `Authorization: Bearer <token>`. It lives
outside `/api/v1` and outside the OpenAPI document: it is for Prometheus, not for people.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.errors import NotFound, Unauthorized
from service.config import get_settings
from service.observability import metrics
from service.observability.collector import DatabaseCollector
from service.observability.context import HEADER, bound, new_request_id, sane_request_id
from service.runtime import get_database

__all__ = ["RequestContextMiddleware", "router", "scrape_registry"]

router = APIRouter(include_in_schema=False)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_WORK_ORDER_PATH = re.compile(r"/api/v1/work-orders/([0-9]{8}-[0-9]{7,})(?:/|$)")
_HEADER = HEADER.lower().encode()


def scrape_registry() -> CollectorRegistry:
    """Process metrics (the host's, in multi-process mode) and the database figures."""
    return metrics.scrape_registry([DatabaseCollector(get_database, get_settings)])


@router.get("/metrics")
def scrape(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    token = get_settings().metrics_token.get_secret_value()
    if not token:
        raise NotFound("metrics are not served here (HOTLINE_METRICS_TOKEN is not set)")
    given = (authorization or "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise Unauthorized("metrics need Authorization: Bearer <HOTLINE_METRICS_TOKEN>")
    registry = request.app.state.metrics_registry
    return Response(metrics.render(registry), media_type=metrics.CONTENT_TYPE_LATEST)


class RequestContextMiddleware:
    """Bind a request id (the caller's `X-Request-ID` when sane, else a new one; answered in the
    response header) and the work-order number of `/api/v1/work-orders/<number>` paths for the
    logs, and record the request's latency by route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == _HEADER), None)
        request_id = sane_request_id(given) or new_request_id()
        found = _WORK_ORDER_PATH.match(scope.get("path", ""))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (_HEADER, request_id.encode()),
                ]
            await send(message)

        began = time.perf_counter()
        try:
            with bound(request_id=request_id, work_order=found.group(1) if found else None):
                await self.app(scope, receive, send_with_id)
        finally:
            if metrics.enabled():
                route = scope.get("route")
                method = scope.get("method", "")
                metrics.HTTP_DURATION.labels(
                    method if method in _METHODS else "other",
                    getattr(route, "path", None) or "unmatched",
                    str(status),
                ).observe(time.perf_counter() - began)
