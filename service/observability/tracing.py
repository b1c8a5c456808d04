"""OpenTelemetry tracing hooks: off by default (`HOTLINE_OTEL_ENABLED`), and free when off.

When off, nothing here imports OpenTelemetry (a test checks that no `opentelemetry` module is
loaded). When on, the instrumentors of the `otel` extra (`pip install -e ".[otel]"`) that are
installed are applied: FastAPI (per app), SQLAlchemy (per engine) and Celery (per worker
process). Exporter and sampling come from the standard `OTEL_*` environment variables
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`, ...); with the SDK
and the OTLP exporter installed, spans are exported over OTLP/HTTP in batches.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from service.config import Settings

__all__ = ["instrument_app", "instrument_celery", "instrument_engine"]

log = logging.getLogger(__name__)

_done: set[str] = set()


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        log.warning(
            "HOTLINE_OTEL_ENABLED is on but %s is not installed (pip install -e '.[otel]')", name
        )
        return None


def _provider() -> None:
    """Install the SDK's tracer provider with a batching OTLP exporter, once per process."""
    if "provider" in _done:
        return
    _done.add("provider")
    sdk = _module("opentelemetry.sdk.trace")
    export = _module("opentelemetry.sdk.trace.export")
    otlp = _module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    trace = _module("opentelemetry.trace")
    if sdk is None or export is None or trace is None:
        return
    provider = sdk.TracerProvider()
    if otlp is not None:
        provider.add_span_processor(export.BatchSpanProcessor(otlp.OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def instrument_app(app: Any, settings: Settings) -> bool:
    """Trace the FastAPI app's requests; True when instrumented."""
    if not settings.otel_enabled:
        return False
    _provider()
    module = _module("opentelemetry.instrumentation.fastapi")
    if module is None:
        return False
    module.FastAPIInstrumentor.instrument_app(app, excluded_urls="/metrics,/healthz,/readyz")
    return True


def instrument_engine(engine: Any, settings: Settings) -> bool:
    """Trace the SQL statements of a SQLAlchemy engine; True when instrumented."""
    if not settings.otel_enabled:
        return False
    _provider()
    module = _module("opentelemetry.instrumentation.sqlalchemy")
    if module is None:
        return False
    # It checks the installed SQLAlchemy against the range it supports (0.66b2: below 2.1) and
    # logs a warning instead of instrumenting outside it; forcing it needs greenlet.
    instrumentor = module.SQLAlchemyInstrumentor()
    instrumentor.instrument(engine=engine)
    return bool(instrumentor.is_instrumented_by_opentelemetry)


def instrument_celery(settings: Settings) -> bool:
    """Trace Celery task publishing and execution in this process; True when instrumented."""
    if not settings.otel_enabled or "celery" in _done:
        return "celery" in _done
    _provider()
    module = _module("opentelemetry.instrumentation.celery")
    if module is None:
        return False
    module.CeleryInstrumentor().instrument()
    _done.add("celery")
    return True
