"""OpenTelemetry hooks: nothing imported when off; request and SQL spans when on.

FastAPI itself (0.16x) imports the OpenTelemetry *API* for its built-in telemetry, which is a
no-op without an SDK; off means we import nothing beyond what a bare FastAPI app does: no SDK,
no instrumentor, no exporter."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

BASELINE = textwrap.dedent(
    """
    import json, sys
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    app = FastAPI()
    app.get("/x")(lambda: {})
    TestClient(app).get("/x")
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))
    """
)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from fastapi.testclient import TestClient
    from service.api.app import create_app
    from service.runtime import get_database
    import service.worker.app  # the worker's Celery app, with its signal handlers
    spans = None
    client = TestClient(create_app())  # sets the tracer provider up when on
    if sys.argv[1] == "on":
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        spans = InMemorySpanExporter()
        trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(spans))
    assert client.get("/api/v1/auth/me").status_code == 401
    with get_database().session() as session:
        session.execute(__import__("sqlalchemy").text("SELECT 1"))
    from service.config import get_settings
    from service.observability import tracing
    print(json.dumps({
        "sql_instrumented": tracing.instrument_engine(get_database().engine, get_settings()),
        "modules": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
        "spans": [s.name for s in spans.get_finished_spans()] if spans else [],
    }))
    """
)


@pytest.mark.parametrize("mode", ["off", "on"])
def test_tracing_is_off_by_default_and_instruments_requests_and_sql_when_on(
    app_env: str, python: str, mode: str
) -> None:
    env = {**os.environ, "HOTLINE_DATABASE_URL": app_env}
    if mode == "on":
        pytest.importorskip("opentelemetry.instrumentation.fastapi")
        env["HOTLINE_OTEL_ENABLED"] = "true"
    else:
        env.pop("HOTLINE_OTEL_ENABLED", None)
    done = subprocess.run(
        [python, "-c", SCRIPT, mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if mode == "off":
        bare = subprocess.run(
            [python, "-c", BASELINE], env=env, capture_output=True, text=True, timeout=120
        )
        assert bare.returncode == 0, bare.stderr[-3000:]
        assert set(result["modules"]) <= set(json.loads(bare.stdout))
        assert not [m for m in result["modules"] if ".sdk" in m or ".instrumentation" in m]
        assert result["spans"] == []
    else:
        assert any("/api/v1/auth/me" in name for name in result["spans"]), result["spans"]
        if result["sql_instrumented"]:  # the instrumentor supports the installed SQLAlchemy
            assert any(name.startswith("SELECT") for name in result["spans"]), result["spans"]
