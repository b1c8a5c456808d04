"""Group-committed intake (`intake.submit_many`, and `intake.submit` from many threads): every
appeal stored and routed once, in a few multi-row statements, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from router.workorders import queries
from router.workorders import service as workorders
from router.workorders.models import Appeal, WorkOrder
from service import classification, intake, runtime
from service.config import get_settings
from service.delivery.models import Delivery
from service.outbox import OutboxMessage

TEXTS = [
    "幸福路和人民路交叉口的红绿灯坏了三天了，早晚高峰非常拥堵，请尽快维修。",
    "小区楼下的烧烤摊每天营业到凌晨两点，油烟和噪音严重影响休息。",
    "我家自来水从昨天开始发黄，有异味，不敢饮用，请供水公司来检查。",
    "公司拖欠我三个月工资一直不发，老板电话也不接，请劳动部门帮忙。",
    "公园里的健身器材坏了好几件，老人锻炼时很危险，希望尽快修理。",
]


@pytest.fixture
def dispatching(seeded_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every appeal auto-dispatched, and queue deliveries recorded (nothing sends them here)."""
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "0")
    monkeypatch.setenv("HOTLINE_DELIVERY_AMQP_URL", "amqp://broker.invalid//")
    runtime.get_settings.cache_clear()


def submissions(texts: Sequence[str], **fields: Any) -> list[intake.Submission]:
    return [
        intake.Submission(
            workorders.AppealInput(
                channel="web", text=text, caller_phone=f"1390000{i:04d}", **fields
            ),
            "agent",
            "agent",
        )
        for i, text in enumerate(texts)
    ]


def submit_many(items: Sequence[intake.Submission]) -> list[intake.IntakeResult | Exception]:
    return intake.submit_many(
        database=runtime.get_database(), settings=get_settings(), submissions=items
    )


def results_of(outcomes: Sequence[intake.IntakeResult | Exception]) -> list[intake.IntakeResult]:
    assert all(isinstance(o, intake.IntakeResult) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, intake.IntakeResult)]


def count(model: Any) -> int:
    with runtime.get_database().session() as db_session:
        return int(db_session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_batch_is_stored_routed_and_queued_in_one_go(dispatching: None) -> None:
    results = results_of(submit_many(submissions(TEXTS)))
    assert [r.created for r in results] == [True] * 5
    assert [r.state for r in results] == ["dispatched"] * 5
    assert len({r.number for r in results}) == 5
    assert all(r.suggestion and r.decision for r in results)
    with runtime.get_database().session() as db_session:
        orders = {
            o.number: o
            for o in db_session.scalars(
                select(WorkOrder).where(WorkOrder.number.in_([r.number for r in results]))
            )
        }
        for result in results:
            order = orders[result.number]
            assert order.department_code == result.decision.department_code  # type: ignore[union-attr]
            actions = [e.action for e in workorders.events(db_session=db_session, work_order=order)]
            assert actions == ["receive", "triage_auto"]
        deliveries = list(db_session.scalars(select(Delivery)))
        outbox = list(db_session.scalars(select(OutboxMessage)))
    # one delivery per department of each order, all in one deliver_batch task
    leads = {(d.work_order_id, d.department_code) for d in deliveries}
    assert {(o.id, o.department_code) for o in orders.values()} <= leads
    assert [m.task for m in outbox] == ["dispatch.deliver_batch"]
    assert sorted(outbox[0].kwargs["delivery_ids"]) == sorted(d.id for d in deliveries)


def test_idempotency_keys_are_honoured_across_and_within_a_batch(dispatching: None) -> None:
    earlier = intake.submit(
        database=runtime.get_database(),
        settings=get_settings(),
        appeal=workorders.AppealInput(channel="web", text=TEXTS[0], idempotency_key="k-1"),
        actor="agent",
        role="agent",
    )
    items = [
        intake.Submission(
            workorders.AppealInput(channel="web", text=t, idempotency_key=k), "a", "agent"
        )
        for t, k in ((TEXTS[0], "k-1"), (TEXTS[1], "k-2"), (TEXTS[1], "k-2"), (TEXTS[2], None))
    ]
    results = results_of(submit_many(items))
    assert [r.created for r in results] == [False, True, False, True]
    assert results[0].number == earlier.number
    assert results[0].state == earlier.state
    assert results[2].number == results[1].number
    assert count(Appeal) == 3


def test_a_failing_batch_insert_stores_each_appeal_alone(
    dispatching: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = workorders.receive_appeals

    def fail_on_batches(**kwargs: Any) -> Any:
        if len(kwargs["items"]) > 1:
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(**kwargs)

    monkeypatch.setattr(workorders, "receive_appeals", fail_on_batches)
    results = results_of(submit_many(submissions(TEXTS[:3])))
    assert [r.created for r in results] == [True] * 3
    assert [r.state for r in results] == ["dispatched"] * 3
    assert count(Appeal) == 3 and count(WorkOrder) == 3


def test_an_appeal_that_cannot_be_stored_fails_alone(
    dispatching: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = workorders.receive_appeal

    def refuse_water(**kwargs: Any) -> Any:
        if "自来水" in kwargs["appeal"].text:
            raise OperationalError("INSERT", {}, Exception("value refused"))
        return real(**kwargs)

    monkeypatch.setattr(workorders, "receive_appeals", lambda **kwargs: refuse_water(**kwargs))
    monkeypatch.setattr(workorders, "receive_appeal", refuse_water)
    outcomes = submit_many(submissions(TEXTS[:4]))
    assert isinstance(outcomes[2], OperationalError)
    assert [o.state for i, o in enumerate(outcomes) if i != 2] == ["dispatched"] * 3  # type: ignore[union-attr]
    assert count(Appeal) == 3


def test_a_failing_batch_route_routes_each_order_alone_and_stores_nothing_twice(
    dispatching: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = classification.suggest_many

    def fail_on_batches(**kwargs: Any) -> Any:
        if len(kwargs["appeals"]) > 1:
            raise RuntimeError("model crashed on a batch")
        return real(**kwargs)

    monkeypatch.setattr(classification, "suggest_many", fail_on_batches)
    results = results_of(submit_many(submissions(TEXTS[:3])))
    assert [r.state for r in results] == ["dispatched"] * 3
    assert count(Appeal) == 3
    with runtime.get_database().session() as db_session:
        assert db_session.scalar(select(func.count()).select_from(Delivery)) >= 3
        assert db_session.scalar(select(func.count()).select_from(OutboxMessage)) == 3


def test_without_a_model_the_batch_is_kept_received(
    dispatching: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(tmp_path))
    runtime.get_settings.cache_clear()
    results = results_of(submit_many(submissions(TEXTS[:3])))
    assert [(r.created, r.state, r.suggestion) for r in results] == [(True, "received", None)] * 3
    assert count(Appeal) == 3


def test_a_near_duplicate_in_the_same_batch_is_suggested(
    seeded_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_AUTO_DISPATCH_THRESHOLD", "1.01")
    runtime.get_settings.cache_clear()
    light = "万国城小区门口的路灯坏了半个多月，晚上一片漆黑，老人小孩出门很不安全，请尽快派人维修。"
    again = "万国城小区门口路灯坏了好久了，晚上一片漆黑，老人小孩出门不安全，希望尽快维修。"
    first, second = results_of(submit_many(submissions([light, again])))
    assert (first.duplicate_action, second.duplicate_action) == ("none", "suggest")
    with runtime.get_database().session() as db_session:
        order = queries.get_by_number(db_session=db_session, number=second.number)
        assert order is not None
        from router.duplicates import service as merges

        candidates = merges.candidates_of(db_session=db_session, work_order=order)
        assert [c.candidate_id for c, _ in candidates][:1] == [
            queries.get_by_number(db_session=db_session, number=first.number).id  # type: ignore[union-attr]
        ]


def test_concurrent_submits_each_get_their_own_order(dispatching: None) -> None:
    database, settings = runtime.get_database(), get_settings()
    before = intake._committer.items
    results: dict[int, intake.IntakeResult] = {}
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = intake.submit(
                database=database,
                settings=settings,
                appeal=workorders.AppealInput(
                    channel="web", text=f"{TEXTS[i % 5]}（第{i}次）", caller_phone=f"1370000{i:04d}"
                ),
                actor="agent",
                role="agent",
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len({r.number for r in results.values()}) == 16
    assert all(r.created and r.state == "dispatched" for r in results.values())
    assert intake._committer.items - before == 16
    assert count(Appeal) == 16
    with database.session() as db_session:
        phones = set(db_session.scalars(select(Appeal.caller_phone)))
    assert phones == {f"1370000{i:04d}" for i in range(16)}


def test_more_concurrent_posts_than_pooled_connections_each_get_an_order(
    seeded_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from anyio import to_thread
    from fastapi.testclient import TestClient

    from service.api.app import create_app
    from tests.conftest import DEMO_PASSWORD

    # More requests in flight than the database pool has connections (SQLite 5 + 10,
    # PostgreSQL 10 + 20): a waiting request must not hold one.
    monkeypatch.setenv("HOTLINE_API_THREADS", "48")
    runtime.get_settings.cache_clear()
    with TestClient(create_app()) as client:
        assert client.portal is not None
        tokens = client.portal.call(lambda: to_thread.current_default_thread_limiter().total_tokens)
        assert tokens == 48
        login = client.post(
            "/api/v1/auth/token", data={"username": "agent", "password": DEMO_PASSWORD}
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        statuses: list[int] = []
        numbers: list[str] = []

        def post(i: int) -> None:
            response = client.post(
                "/api/v1/appeals",
                json={"channel": "web", "text": f"{TEXTS[i % 5]}（{i}）"},
                headers=headers,
            )
            statuses.append(response.status_code)
            numbers.append(response.json().get("number", ""))

        threads = [threading.Thread(target=post, args=(i,), daemon=True) for i in range(40)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 90
        for thread in threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        assert not any(thread.is_alive() for thread in threads), "requests starved of connections"
    assert statuses == [201] * 40
    assert len(set(numbers)) == 40
    assert count(Appeal) == 40
