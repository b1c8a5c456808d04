"""`hotline duplicate-server` as a real process: the processes that check appeals hold no index of
their own, a server that is down never blocks intake, and a restarted one is used again."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Client
from pathlib import Path

import pytest

from benchmarks.duplicates import City
from router.duplicates import detector
from router.duplicates.index import AppealRecord, DuplicateCheck, DuplicateIndex
from router.workorders import service as workorders
from service import intake, runtime
from service.config import get_settings
from service.duplicate_server import DuplicateServer, RemoteDetector
from tests.support import wait_for

LIGHT = "万国城小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
LIGHT_AGAIN = "万国城小区门口路灯坏了好久了，晚上一片漆黑，老人小孩出门不安全，希望尽快维修。"


def submit(text: str, phone: str) -> intake.IntakeResult:
    return intake.submit(
        database=runtime.get_database(),
        settings=get_settings(),
        appeal=workorders.AppealInput(channel="web", text=text, caller_phone=phone),
        actor="agent",
        role="agent",
    )


class Server:
    def __init__(self, env: dict[str, str], log: Path, socket: str) -> None:
        self.socket = socket
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "duplicate-server"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        assert wait_for(lambda: "index warmed" in log.read_text(), timeout=60), log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)


@pytest.fixture
def socket_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="dup-", dir="/tmp")  # a Unix socket path is short
    yield f"{directory}/index.sock"
    shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.slow
def test_checks_go_to_the_server_and_survive_its_restart(
    seeded_env: str, socket_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    monkeypatch.setenv("HOTLINE_DUPLICATE_SERVER", socket_path)
    runtime.reset()
    env = {**os.environ}
    server = Server(env, tmp_path / "server.log", socket_path)
    try:
        first = submit(LIGHT, "13800000101")
        again = submit(LIGHT_AGAIN, "13800000102")
        assert (first.duplicate_action, again.duplicate_action) == ("none", "suggest")
        assert runtime.get_database() not in detector._detectors  # no index in this process

        server.stop()
        down = submit(LIGHT_AGAIN, "13800000103")  # advice is missing; the appeal is not
        assert (down.created, down.duplicate_action) == (True, "none")

        server = Server(env, tmp_path / "restarted.log", socket_path)
        back = submit(LIGHT_AGAIN, "13800000104")
        assert back.duplicate_action == "suggest"
        assert runtime.get_database() not in detector._detectors
    finally:
        server.stop()


def test_the_server_refuses_a_client_without_the_key(
    seeded_env: str, socket_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_DUPLICATE_SERVER", socket_path)
    server = Server({**os.environ}, tmp_path / "server.log", socket_path)
    try:
        with pytest.raises(Exception) as refused:
            Client(socket_path, authkey=b"not the key")
        assert "AuthenticationError" in type(refused.value).__name__
        assert server.process.poll() is None
    finally:
        server.stop()


def test_checks_through_the_server_equal_checks_of_an_own_index(socket_path: str) -> None:
    """The same detector code answers, so the same candidates, scores and reasons come back."""
    own, served = DuplicateIndex(), DuplicateIndex()

    def check_many(records: list[AppealRecord]) -> list[DuplicateCheck]:
        results = [served.check(record) for record in records]
        served.extend(records)
        return results

    server = DuplicateServer(socket_path, b"key", check_many, lambda: 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = RemoteDetector(socket_path, b"key")
    city = City(3)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    records = [city.appeal(start + timedelta(minutes=i)) for i in range(600)]
    try:
        suggested = 0
        for record in records:
            expected = own.check(record)
            own.add(record)
            assert remote.check_many(records=[record]) == [expected]
            suggested += expected.action != "none"
        assert suggested > 20  # the replay does exercise suggestions
    finally:
        remote.close()
        server.close()
