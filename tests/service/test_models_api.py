"""The model registry over HTTP: roles, listing, activation, rollback, errors, audit, and the
end-to-end retraining by a real worker process whose new version the API then serves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from router.workorders.models import WorkOrder
from service import runtime
from service.auth.models import AuditEntry
from service.config import get_settings
from tests.support import wait_for
from training import registry

Login = Callable[[str], dict[str, str]]


def register_demo(demo_model_dir: Path, *, source: str = "test") -> str:
    with runtime.get_database().session() as db_session:
        row = registry.register(
            db_session=db_session,
            artifact_dir=demo_model_dir,
            versions_dir=get_settings().model_versions_dir,
            source=source,
            move=False,
        )
        return row.version


def audit_actions(target_id: str) -> list[tuple[str, str]]:
    with runtime.get_database().session() as db_session:
        return [
            (e.action, e.actor)
            for e in db_session.scalars(
                select(AuditEntry).where(AuditEntry.target_id == target_id).order_by(AuditEntry.id)
            )
        ]


def test_only_supervisors_and_admins_use_the_registry(client: TestClient, login: Login) -> None:
    assert client.get("/api/v1/models").status_code == 401
    for user in ("agent", "dept_housing"):
        response = client.get("/api/v1/models", headers=login(user))
        assert response.status_code == 403, user
        assert response.json()["error"] == "Forbidden"
        assert client.post("/api/v1/models/train", headers=login(user)).status_code == 403
        assert client.post("/api/v1/models/rollback", headers=login(user)).status_code == 403
    for user in ("supervisor", "admin"):
        assert client.get("/api/v1/models", headers=login(user)).json() == {"items": []}


def test_unknown_version_and_job_are_404_and_nothing_to_roll_back_is_409(
    client: TestClient, login: Login
) -> None:
    headers = login("supervisor")
    response = client.post("/api/v1/models/nope/activate", headers=headers)
    assert (response.status_code, response.json()["error"]) == (404, "NotFound")
    response = client.get("/api/v1/models/jobs/nope", headers=headers)
    assert (response.status_code, response.json()["error"]) == (404, "NotFound")
    response = client.post("/api/v1/models/rollback", headers=headers)
    assert (response.status_code, response.json()["error"]) == (409, "Conflict")


def test_activate_list_and_roll_back_are_audited(
    client: TestClient, login: Login, demo_model_dir: Path
) -> None:
    headers = login("supervisor")
    first, second = register_demo(demo_model_dir), register_demo(demo_model_dir)

    assert client.post(f"/api/v1/models/{first}/activate", headers=headers).status_code == 200
    response = client.post(f"/api/v1/models/{second}/activate", headers=login("admin"))
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    assert response.json()["previous_version"] == first

    items = client.get("/api/v1/models", headers=headers).json()["items"]
    assert [(i["version"], i["status"], i["active"]) for i in items] == [
        (second, "active", True),
        (first, "retired", False),
    ]
    item = items[0]
    assert set(item) >= {"version", "created_at", "active", "status", "source", "metrics"}
    assert 0 <= item["metrics"]["accuracy"] <= 1
    assert {"threshold", "coverage", "accuracy"} <= set(item["coverage_curve"][0])

    response = client.post("/api/v1/models/rollback", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == first
    assert audit_actions(first) == [
        ("model.activate", "supervisor"),
        ("model.rollback", "supervisor"),
    ]
    assert audit_actions(second) == [("model.activate", "admin")]


def test_rejected_version_or_missing_artifact_cannot_be_activated(
    client: TestClient, login: Login, demo_model_dir: Path
) -> None:
    headers = login("supervisor")
    rejected, missing = register_demo(demo_model_dir), register_demo(demo_model_dir)
    with runtime.get_database().session() as db_session:
        registry.get_version_or_raise(db_session=db_session, version=rejected).status = "rejected"
        path = registry.get_version_or_raise(db_session=db_session, version=missing).path
    shutil.rmtree(path)
    for version in (rejected, missing):
        response = client.post(f"/api/v1/models/{version}/activate", headers=headers)
        assert (response.status_code, response.json()["error"]) == (409, "Conflict"), version
    assert audit_actions(rejected) == audit_actions(missing) == []


def test_training_request_is_queued_once(client: TestClient, login: Login) -> None:
    headers = login("supervisor")
    response = client.post("/api/v1/models/train", json={"from_db": False}, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert response.json()["status"] == "queued"
    job = client.get(f"/api/v1/models/jobs/{job_id}", headers=headers).json()
    assert (job["status"], job["progress"], job["version"], job["promoted"]) == (
        "queued",
        0.0,
        None,
        None,
    )
    empty = {"from_db": False, "include_base": False}
    response = client.post("/api/v1/models/train", json=empty, headers=headers)
    assert (response.status_code, response.json()["error"]) == (400, "InvalidInput")
    second = client.post("/api/v1/models/train", headers=headers)
    assert second.status_code == 409
    assert second.json()["job_id"] == job_id
    assert audit_actions(job_id) == [("model.train", "supervisor")]
    from service.outbox import OutboxMessage

    with runtime.get_database().session() as db_session:
        tasks = [(m.task, m.kwargs) for m in db_session.scalars(select(OutboxMessage))]
    assert ("training.run", {"job_id": job_id}) in tasks


# -- end to end: a real worker trains, the API serves the new version -----------------------------


@pytest.fixture
def training_worker(
    client: TestClient,
    broker_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """A worker process on the training queue; an empty model dir, a tiny demo corpus."""
    empty = tmp_path / "no-model"
    empty.mkdir()
    monkeypatch.setenv("HOTLINE_BROKER_URL", broker_url)
    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(empty))
    monkeypatch.setenv("HOTLINE_TRAINING_DEMO_CORPUS_SIZE", "300")
    monkeypatch.setenv("HOTLINE_MODEL_REFRESH_SECONDS", "0")
    runtime.reset()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service.cli",
                "worker",
                "--concurrency",
                "1",
                "--pool",
                "solo",
                "--queues",
                "training",
            ],
            env={**os.environ},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield log_path
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("database_url", "broker_url"),
    [("sqlite", "sqla"), ("postgresql", "rabbitmq")],
    indirect=True,
)
def test_worker_trains_and_the_api_serves_the_promoted_version(
    client: TestClient, login: Login, training_worker: Path
) -> None:
    headers = login("supervisor")
    # Without any model the API cannot classify yet.
    assert (
        client.post("/api/v1/classify", json={"text": "路灯坏了"}, headers=headers).status_code
        == 503
    )

    response = client.post("/api/v1/models/train", json={"from_db": True}, headers=headers)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]

    def finished() -> dict[str, Any] | None:
        job = client.get(f"/api/v1/models/jobs/{job_id}", headers=headers).json()
        return job if job["status"] in ("succeeded", "failed") else None

    job = wait_for(finished, timeout=120, interval=0.5)
    assert job is not None, training_worker.read_text()[-3000:]
    assert job["status"] == "succeeded", job["message"]
    assert (job["progress"], job["promoted"]) == (1.0, True)  # nothing was active before
    items = client.get("/api/v1/models", headers=headers).json()["items"]
    assert [(i["version"], i["status"]) for i in items] == [(job["version"], "active")]

    # This API process never trained anything, yet serves the version the worker activated.
    created = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": "小区路灯坏了"}, headers=login("agent")
    )
    assert created.status_code == 201, created.text
    with runtime.get_database().session() as db_session:
        order = db_session.scalar(
            select(WorkOrder).where(WorkOrder.number == created.json()["number"])
        )
        assert order is not None
        assert order.model_version == job["version"]
