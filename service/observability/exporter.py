"""A separate metrics port (`HOTLINE_METRICS_PORT`): prometheus_client's own HTTP server on a
daemon thread of the command's main process, serving what `/metrics` serves, without a token
(bind it to a private interface: `HOTLINE_METRICS_HOST`, default 127.0.0.1)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, start_http_server

__all__ = ["start"]

log = logging.getLogger(__name__)


def start(*, host: str, port: int, registry: CollectorRegistry) -> None:
    start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, port)
