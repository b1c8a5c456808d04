from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from router.catalogue.models import Department
from router.errors import Conflict, NotFound
from router.workorders import queries
from router.workorders import service as workorders
from router.workorders.models import WorkOrderEvent
from service.db import Database

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    database = Database(database_url)
    with database.session() as db_session:
        db_session.add_all(
            [
                Department(code="D1", name="住建局", kind="city", parent_code=None),
                Department(code="D2", name="城管局", kind="city", parent_code=None),
            ]
        )
        db_session.flush()
        yield db_session
    database.dispose()


def appeal(**overrides: object) -> workorders.AppealInput:
    values: dict[str, object] = {"channel": "web", "text": "小区路灯坏了一个月没人修", **overrides}
    return workorders.AppealInput(**values)  # type: ignore[arg-type]


def test_receiving_an_appeal_creates_a_received_order_with_its_first_event(
    session: Session,
) -> None:
    order, created = workorders.receive_appeal(db_session=session, appeal=appeal(), now=NOW)
    assert created
    assert order.state == "received"
    assert order.number.startswith("20260302-")
    history = workorders.events(db_session=session, work_order=order)
    assert [(e.action, e.from_state, e.to_state) for e in history] == [
        ("receive", None, "received")
    ]


def test_same_idempotency_key_returns_the_first_order(session: Session) -> None:
    first, created_first = workorders.receive_appeal(
        db_session=session, appeal=appeal(idempotency_key="call-1")
    )
    second, created_second = workorders.receive_appeal(
        db_session=session, appeal=appeal(idempotency_key="call-1", text="别的内容")
    )
    assert (created_first, created_second) == (True, False)
    assert second.id == first.id
    assert second.appeal.text == "小区路灯坏了一个月没人修"


def test_illegal_action_is_a_conflict_and_changes_nothing(session: Session) -> None:
    order, _ = workorders.receive_appeal(db_session=session, appeal=appeal())
    with pytest.raises(Conflict) as excinfo:
        workorders.act(
            db_session=session, work_order=order, action="accept", actor="d1", role="department"
        )
    assert excinfo.value.extra["current_state"] == "received"
    assert order.state == "received"
    assert len(workorders.events(db_session=session, work_order=order)) == 1


def test_legal_actions_append_events_in_order(session: Session) -> None:
    order, _ = workorders.receive_appeal(db_session=session, appeal=appeal())
    order.department_code = "D1"
    workorders.act(db_session=session, work_order=order, action="dispatch", actor="a", role="agent")
    workorders.act(
        db_session=session, work_order=order, action="accept", actor="d1", role="department"
    )
    workorders.act(
        db_session=session,
        work_order=order,
        action="escalate",
        actor="s",
        role="supervisor",
        reason="超期未办",
    )
    history = workorders.events(db_session=session, work_order=order)
    assert [e.action for e in history] == ["receive", "dispatch", "accept", "escalate"]
    assert order.state == "accepted"
    assert order.escalated is True
    assert isinstance(history[-1], WorkOrderEvent)
    assert history[-1].reason == "超期未办"


def test_another_departments_order_is_not_found(session: Session) -> None:
    order, _ = workorders.receive_appeal(db_session=session, appeal=appeal())
    order.department_code = "D1"
    session.flush()
    assert (
        queries.get_by_number_or_raise(
            db_session=session, number=order.number, department_code="D1"
        )
        is order
    )
    with pytest.raises(NotFound):
        queries.get_by_number_or_raise(
            db_session=session, number=order.number, department_code="D2"
        )
    with pytest.raises(NotFound):
        queries.get_by_number_or_raise(db_session=session, number="20260101-0000000")
