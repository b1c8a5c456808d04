"""`hotline run` on a machine that already has a model: it says it is running only once the API
listens, logs nothing while idle, and stops within a few seconds of SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
STOP_LIMIT_SECONDS = 12.0  # the processes' grace (STOP_GRACE_SECONDS = 10) and the exit itself


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_run_announces_the_api_when_it_listens_and_stops_quickly_on_sigterm(
    tmp_path: Path, demo_model_dir: Path
) -> None:
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HOTLINE_") or key == "HOTLINE_DEMO_PASSWORD"
    }
    env |= {
        "PYTHONPATH": str(ROOT),
        "HOTLINE_VAR_DIR": str(tmp_path / "var"),
        "HOTLINE_MODEL_DIR": str(demo_model_dir),
        "HOTLINE_PORT": str(port),
        "HOTLINE_OUTBOX_RELAY_SECONDS": "1",
    }
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "run"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while "running on" not in log_path.read_text():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        # Announced only once uvicorn listens: the API answers straight away.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        text = log_path.read_text()
        assert text.count("reference data:") == 1
        assert "TrainResult(" not in text and "SyncReport(" not in text

        time.sleep(4)  # four ticks of the outbox relay with nothing to publish
        idle = log_path.read_text()[len(text) :]
        assert [line for line in idle.splitlines() if "relay_outbox" in line] == []

        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        seconds = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 0, log_path.read_text()
    assert seconds < STOP_LIMIT_SECONDS, log_path.read_text()


def test_training_progress_logs_each_stage_and_tenth_once(caplog: pytest.LogCaptureFixture) -> None:
    from service.bootstrap import TrainingProgress

    ticks = iter(range(100))
    progress = TrainingProgress(clock=lambda: float(next(ticks)))
    with caplog.at_level("INFO", logger="service.bootstrap"):
        for fraction in (0.0, 0.01, 0.02, 0.15, 0.19):
            progress("features", fraction)
        progress("models", 0.5)
        progress("done", 1.0)
    assert [r.getMessage() for r in caplog.records] == [
        "training the demo model: features 0% (1 s)",
        "training the demo model: features 15% (2 s)",
        "training the demo model: models 50% (3 s)",
        "training the demo model: done 100% (4 s)",
    ]
