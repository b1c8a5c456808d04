"""Duplicate detection on intake: suggestions, automatic merges, repeat callers, and appeals
committed by other processes, on SQLite and PostgreSQL; each with the process's own index and
through a duplicate server (`HOTLINE_DUPLICATE_SERVER`, service/duplicate_server.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from router.duplicates import detector
from router.duplicates.index import AppealRecord, DuplicateCheck
from router.workorders import service as workorders
from service import intake, runtime
from service.config import get_settings
from service.duplicate_server import DuplicateServer, authkey_of

Login = Callable[[str], dict[str, str]]

LIGHT = "万国城小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
LIGHT_AGAIN = "万国城小区门口路灯坏了好久了，晚上一片漆黑，老人小孩出门不安全，希望尽快维修。"
NOISE = "世纪城旁边工地每天夜里十二点以后还在施工，噪音非常大，吵得人睡不着觉。"


@pytest.fixture(autouse=True, params=["own-index", "duplicate-server"])
def index_place(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run every test with this process's index, and again through a duplicate server (here a
    thread of the test process; tests/service/test_duplicate_server.py runs the real command)."""
    if request.param == "own-index":
        yield request.param
        return
    served: list[int] = []

    def local() -> detector.DuplicateDetector:
        config = intake.duplicate_config(get_settings())
        return detector.detector_for(runtime.get_database(), config)

    def check_many(records: list[AppealRecord]) -> list[DuplicateCheck]:
        served.append(len(records))
        with runtime.get_database().session() as db_session:
            return local().check_many(db_session=db_session, records=records)

    def warm_up() -> int:
        return local().warm_up(runtime.get_database().session)

    directory = tempfile.mkdtemp(prefix="dup-", dir="/tmp")  # a Unix socket path is short
    authkey = authkey_of(os.environ["HOTLINE_SECRET_KEY"])
    server = DuplicateServer(f"{directory}/index.sock", authkey, check_many, warm_up)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HOTLINE_DUPLICATE_SERVER", f"{directory}/index.sock")
    runtime.get_settings.cache_clear()
    yield request.param
    server.close()
    shutil.rmtree(directory, ignore_errors=True)
    assert served, "no check went through the duplicate server"


def configure(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    for name, value in values.items():
        monkeypatch.setenv(f"HOTLINE_{name.upper()}", value)
    runtime.get_settings.cache_clear()


def submit(text: str, phone: str) -> intake.IntakeResult:
    return intake.submit(
        database=runtime.get_database(),
        settings=get_settings(),
        appeal=workorders.AppealInput(channel="web", text=text, caller_phone=phone),
        actor="agent",
        role="agent",
    )


def read(client: TestClient, login: Login, number: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/work-orders/{number}", headers=login("supervisor"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_near_duplicate_is_merged_on_arrival_when_configured(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch, duplicate_auto_merge="true", duplicate_auto_merge_threshold="0.5")
    first = submit(LIGHT, "13800000001")
    unrelated = submit(NOISE, "13800000002")
    again = submit(LIGHT_AGAIN, "13800000003")
    assert first.state == "review" and unrelated.state == "review"
    assert (again.state, again.duplicate_action, again.master_number) == (
        "merged",
        "auto_merge",
        first.number,
    )
    assert again.suggestion is not None  # the classifier's suggestion is kept for an unmerge
    master = read(client, login, first.number)
    assert master["merged_numbers"] == [again.number]
    merged = read(client, login, again.number)
    assert merged["events"][-1]["action"] == "merge"
    assert merged["events"][-1]["data"]["automatic"] is True
    assert merged["category_code"] is not None


def test_without_the_setting_a_near_duplicate_is_only_suggested(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch)
    first = submit(LIGHT, "13800000011")
    again = submit(LIGHT_AGAIN, "13800000012")
    assert (again.state, again.duplicate_action) == ("review", "suggest")
    assert read(client, login, again.number)["duplicate_suggestion"]["number"] == first.number


def test_appeals_committed_elsewhere_are_caught_up_from_the_database(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch)
    submit(NOISE, "13800000021")  # warms this process's index
    with runtime.get_database().session() as db_session:  # another process's intake
        order, _ = workorders.receive_appeal(
            db_session=db_session,
            appeal=workorders.AppealInput(channel="phone", text=LIGHT, caller_phone="13800000022"),
        )
        elsewhere = order.number
    again = submit(LIGHT_AGAIN, "13800000023")
    assert again.duplicate_action == "suggest"
    assert read(client, login, again.number)["duplicate_suggestion"]["number"] == elsewhere


def test_a_caller_calling_again_about_the_same_problem_is_linked(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch)
    first = submit(LIGHT, "13800000031")
    submit(NOISE, "13800000031")
    again = submit(LIGHT_AGAIN, "138-0000-0031")
    assert read(client, login, again.number)["repeat_of"] == first.number
    other = submit(LIGHT_AGAIN, "13800000039")
    assert read(client, login, other.number)["repeat_of"] is None
    response = client.get(f"/api/v1/work-orders/{again.number}/duplicates", headers=login("agent"))
    assert response.json()["repeat_of"] == first.number


def test_the_index_can_be_warmed_before_the_first_appeal(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(monkeypatch)
    with runtime.get_database().session() as db_session:
        for text, phone in ((LIGHT, "13800000041"), (NOISE, "13800000042")):
            workorders.receive_appeal(
                db_session=db_session,
                appeal=workorders.AppealInput(channel="web", text=text, caller_phone=phone),
            )
    assert intake.warm_duplicate_index(runtime.get_database(), get_settings()) == 2
    assert intake.warm_duplicate_index(runtime.get_database(), get_settings()) == 0
    assert submit(LIGHT_AGAIN, "13800000043").duplicate_action == "suggest"


def test_an_appeal_is_not_merged_automatically_into_a_closed_order(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router.workorders.models import WorkOrder

    configure(monkeypatch, duplicate_auto_merge="true", duplicate_auto_merge_threshold="0.5")
    first = submit(LIGHT, "13800000051")
    with runtime.get_database().session() as db_session:
        order = db_session.query(WorkOrder).filter_by(number=first.number).one()
        order.state = "closed"  # handled already: a new report needs a person's decision
    again = submit(LIGHT_AGAIN, "13800000052")
    assert (again.state, again.duplicate_action, again.master_number) == ("review", "suggest", None)
    response = client.get(f"/api/v1/work-orders/{again.number}/duplicates", headers=login("agent"))
    assert response.json()["items"][0]["action"] == "suggest"
