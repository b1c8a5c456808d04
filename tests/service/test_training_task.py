"""Retraining from the database: labels from the real API actions, and the `training.run` job
run in-process (the worker subprocess runs it in tests/service/test_models_api.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from service import runtime
from service.config import get_settings
from service.worker.training import run_job
from training.history import collect_history
from training.models import ModelVersion, TrainingJob

Login = Callable[[str], dict[str, str]]

TEXTS = {
    "closed": "小区门口的路灯坏了半个多月，晚上一片漆黑，请尽快维修。",
    "override": "楼上住户装修噪音太大，晚上十点以后还在施工，影响休息。",
    "returned": "我家楼下的下水道堵塞，污水漫到路面上，气味很大。",
    "waiting": "公交站台的顶棚被风吹坏了，下雨天没法等车。",
    "review": "咨询一下新生儿医保应该怎么办理。",
    "auto": "路边有一棵大树倒了，挡住了半条马路。",
}


def _create(
    client: TestClient,
    login: Login,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    *,
    review: bool = True,
) -> str:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01" if review else "0")
    runtime.get_settings.cache_clear()
    response = client.post(
        "/api/v1/appeals", json={"channel": "web", "text": text}, headers=login("agent")
    )
    assert response.status_code == 201, response.text
    number: str = response.json()["number"]
    return number


def _act(
    client: TestClient, login: Login, user: str, number: str, action: str, body: object = None
) -> dict[str, Any]:
    response = client.post(f"/api/v1/work-orders/{number}/{action}", json=body, headers=login(user))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _dept_user(code: str) -> str:
    return f"dept_{code.lower()}"


def _leaf_with_lead_other_than(department: str) -> tuple[str, str]:
    from router.catalogue.models import Category

    with runtime.get_database().session() as db_session:
        row = db_session.execute(
            select(Category.code, Category.lead_department_code)
            .where(
                Category.level == 3,
                Category.lead_department_code.is_not(None),
                Category.lead_department_code != department,
            )
            .order_by(Category.code)
            .limit(1)
        ).one()
    return row.code, row.lead_department_code


def test_history_labels_follow_the_final_route_and_agent_corrections(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers: dict[str, str] = {}
    final: dict[str, tuple[str, str]] = {}

    # Confirmed by an agent, accepted, replied and closed.
    numbers["closed"] = _create(client, login, monkeypatch, TEXTS["closed"])
    done = _act(client, login, "agent", numbers["closed"], "dispatch", {})
    owner = done["department_code"]
    _act(client, login, _dept_user(owner), numbers["closed"], "accept")
    _act(client, login, _dept_user(owner), numbers["closed"], "reply", {"result": "已修复"})
    _act(client, login, "agent", numbers["closed"], "close")

    # Overridden by an agent: the agent's category and department are the label at once.
    numbers["override"] = _create(client, login, monkeypatch, TEXTS["override"])
    category, lead = _leaf_with_lead_other_than("")
    done = _act(
        client, login, "agent", numbers["override"], "dispatch", {"category_code": category}
    )
    assert done["data"]["label_source"] in ("agent_override", "agent_confirm")
    final["override"] = (category, lead)

    # Returned by the first department, redispatched elsewhere and accepted there.
    numbers["returned"] = _create(client, login, monkeypatch, TEXTS["returned"])
    first = _act(client, login, "agent", numbers["returned"], "dispatch", {})["department_code"]
    _act(
        client,
        login,
        _dept_user(first),
        numbers["returned"],
        "return",
        {"reason": "不属于本单位职责"},
    )
    category, lead = _leaf_with_lead_other_than(first)
    _act(client, login, "agent", numbers["returned"], "dispatch", {"category_code": category})
    _act(client, login, _dept_user(lead), numbers["returned"], "accept")
    final["returned"] = (category, lead)

    # Returned and still waiting for an agent: no label (the return is only a negative signal).
    numbers["waiting"] = _create(client, login, monkeypatch, TEXTS["waiting"])
    first = _act(client, login, "agent", numbers["waiting"], "dispatch", {})["department_code"]
    _act(client, login, _dept_user(first), numbers["waiting"], "return", {"reason": "非本单位"})

    # Never routed: no label.
    numbers["review"] = _create(client, login, monkeypatch, TEXTS["review"])

    # Auto-dispatched by the model and accepted by the department.
    numbers["auto"] = _create(client, login, monkeypatch, TEXTS["auto"], review=False)
    order = client.get(f"/api/v1/work-orders/{numbers['auto']}", headers=login("agent")).json()
    _act(client, login, _dept_user(order["department_code"]), numbers["auto"], "accept")
    final["auto"] = (order["category_code"], order["department_code"])

    with runtime.get_database().session() as db_session:
        rows = {row.origin: row for row in collect_history(db_session=db_session)}

    by_name = {name: rows.get(number) for name, number in numbers.items()}
    assert by_name["waiting"] is None
    assert by_name["review"] is None
    closed, override, returned, auto = (
        by_name["closed"],
        by_name["override"],
        by_name["returned"],
        by_name["auto"],
    )
    assert closed is not None and closed.label_source == "agent_confirm"
    assert closed.text == TEXTS["closed"]
    assert override is not None
    assert (override.label, override.department_code) == final["override"]
    assert override.label_source in ("agent_override", "agent_confirm")
    assert returned is not None and returned.label_source == "return_corrected"
    assert (returned.label, returned.department_code) == final["returned"]
    assert auto is not None and auto.label_source == "accepted"
    assert (auto.label, auto.department_code) == final["auto"]
    assert len(rows) == 4


def _make_history(client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch) -> None:
    """A few closed and corrected orders for the retraining tests."""
    for text in TEXTS.values():
        number = _create(client, login, monkeypatch, text)
        owner = _act(client, login, "agent", number, "dispatch", {})["department_code"]
        _act(client, login, _dept_user(owner), number, "accept")


def _job(params: dict[str, Any]) -> str:
    import uuid

    job_id = str(uuid.uuid4())
    with runtime.get_database().session() as db_session:
        db_session.add(TrainingJob(id=job_id, params=params, requested_by="test"))
    return job_id


def _read_job(job_id: str) -> TrainingJob:
    with runtime.get_database().session() as db_session:
        return db_session.get_one(TrainingJob, job_id)


def _versions() -> list[ModelVersion]:
    with runtime.get_database().session() as db_session:
        return list(db_session.scalars(select(ModelVersion).order_by(ModelVersion.id)))


def test_training_job_learns_from_the_history_and_is_not_rerun(
    client: TestClient, login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_history(client, login, monkeypatch)
    monkeypatch.setenv("HOTLINE_TRAINING_DEMO_CORPUS_SIZE", "300")
    runtime.get_settings.cache_clear()
    job_id = _job({"from_db": True})

    # Run it in a thread and watch the row, as GET /api/v1/models/jobs/{id} does.
    result: dict[str, str | None] = {}
    database, settings = runtime.get_database(), get_settings()
    thread = threading.Thread(
        target=lambda: result.update(
            status=run_job(job_id=job_id, database=database, settings=settings)
        )
    )
    thread.start()
    seen: list[tuple[str, float]] = []
    while thread.is_alive():
        row = _read_job(job_id)
        seen.append((row.status, row.progress))
        time.sleep(0.05)
    thread.join()
    status = result["status"]
    running = [progress for state, progress in seen if state == "running"]
    assert running, seen
    assert running == sorted(running)
    assert any(0 < p < 1 for p in running), seen

    job = _read_job(job_id)
    assert status == "succeeded", job.message
    assert (job.status, job.progress, job.attempts) == ("succeeded", 1.0, 1)
    versions = {v.version: v for v in _versions()}
    # The demo model in HOTLINE_MODEL_DIR was adopted first, so the candidate was compared to it.
    adopted = next(v for v in versions.values() if v.source == "model_dir")
    candidate = versions[job.version or ""]
    assert candidate.evaluation["active_version"] == adopted.version
    assert candidate.status == ("active" if job.promoted else "rejected")
    checks = candidate.evaluation["comparison"]["checks"]
    assert {c["metric"] for c in checks} == {"accuracy", "department_accuracy"}
    assert job.promoted == all(c["candidate"] >= c["active"] for c in checks)
    provenance = candidate.provenance
    assert provenance["history_rows"] == len(TEXTS)
    # The base: the demo corpus and up to half as many real messages and titles (level 1).
    assert 0 < provenance["real_rows"] <= 300
    assert provenance["label_sources"]["base"] == 300 + provenance["real_rows"]
    assert provenance["demo_corpus"]["rows"] == 300
    assert sum(provenance["label_sources"].values()) == 300 + provenance["real_rows"] + len(TEXTS)
    assert provenance["job_id"] == job_id
    directory = Path(candidate.path)
    assert (directory / "model.joblib").is_file() and (directory / "holdout.csv").is_file()
    assert directory.parent == get_settings().model_versions_dir
    assert not (get_settings().var_dir / "training" / job_id).exists()  # work files removed

    # A redelivered message for a finished job does nothing.
    again = run_job(job_id=job_id, database=runtime.get_database(), settings=get_settings())
    assert again == "succeeded"
    assert len(_versions()) == len(versions)
    assert _read_job(job_id).attempts == 1


def test_training_job_with_unusable_data_fails_with_the_reason(
    app_env: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("content,category\n路灯坏了,城乡建设\n", encoding="utf-8")
    job_id = _job({"data_files": [str(bad)], "from_db": False})

    status = run_job(job_id=job_id, database=runtime.get_database(), settings=get_settings())

    job = _read_job(job_id)
    assert (status, job.status) == ("failed", "failed")
    assert "'text'" in job.message and "bad.csv" in job.message
    assert job.finished_at is not None
    assert _versions() == []


def test_unknown_training_job_is_ignored(app_env: str) -> None:
    assert (
        run_job(job_id="missing", database=runtime.get_database(), settings=get_settings()) is None
    )
