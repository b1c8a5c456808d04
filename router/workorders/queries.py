"""Reading work orders: the lists behind the inbox and the review queue, lookups by number, and
the deadline status an order shows.

A department only ever sees its own orders: `department_code` scopes every lookup, and another
department's order answers exactly like a missing number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, selectinload

from router.catalogue.models import Category
from router.errors import NotFound
from router.workorders import workflow
from router.workorders.models import Appeal, WorkOrder
from router.workorders.workflow import DeadlineStatus, State

__all__ = [
    "Page",
    "caller_appeals",
    "deadline_status_of",
    "deadline_units",
    "get_by_number",
    "get_by_number_or_raise",
    "list_work_orders",
    "lock_by_number",
    "number_of",
    "phone_spellings",
    "review_queue",
]


@dataclass(frozen=True)
class Page:
    """One page of orders, newest first, and the number of orders of the whole list."""

    orders: list[WorkOrder]
    total: int


def get_by_number(
    *, db_session: Session, number: str, department_code: str | None = None
) -> WorkOrder | None:
    """The order with this number; with `department_code`, only if that department holds it."""
    query = select(WorkOrder).where(WorkOrder.number == number)
    if department_code is not None:
        query = query.where(WorkOrder.department_code == department_code)
    return db_session.scalar(query)


def get_by_number_or_raise(
    *, db_session: Session, number: str, department_code: str | None = None
) -> WorkOrder:
    order = get_by_number(db_session=db_session, number=number, department_code=department_code)
    if order is None:
        # The same answer whether the order does not exist or belongs to another department.
        raise NotFound(f"work order {number} not found")
    return order


def lock_by_number(
    *, db_session: Session, number: str, department_code: str | None = None
) -> WorkOrder:
    """`get_by_number_or_raise`, with the row locked (PostgreSQL) so that two concurrent actions
    on one order queue up."""
    order = get_by_number_or_raise(
        db_session=db_session, number=number, department_code=department_code
    )
    db_session.refresh(order, with_for_update=True)
    return order


def number_of(*, db_session: Session, work_order_id: int | None) -> str | None:
    """The number of the order with this id (None for None or a missing id)."""
    if work_order_id is None:
        return None
    return db_session.scalar(select(WorkOrder.number).where(WorkOrder.id == work_order_id))


def _page(db_session: Session, query: Select[WorkOrder], limit: int, offset: int) -> Page:
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db_session.scalars(
        query.options(selectinload(WorkOrder.appeal))
        .order_by(WorkOrder.created_at.desc(), WorkOrder.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return Page(list(rows), total)


def list_work_orders(
    *,
    db_session: Session,
    now: datetime,
    department_scope: str | None = None,
    department_code: str | None = None,
    state: State | None = None,
    overdue: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Orders, newest first. `department_scope` is the department a department user belongs to
    (None for the centre); `department_code` is a filter anybody may set."""
    query = select(WorkOrder)
    if department_scope is not None:
        query = query.where(WorkOrder.department_code == department_scope)
    if department_code is not None:
        query = query.where(WorkOrder.department_code == department_code)
    if state is not None:
        query = query.where(WorkOrder.state == state.value)
    running = WorkOrder.state.in_([s.value for s in workflow.AT_DEPARTMENT])
    if overdue is True:
        query = query.where(running, WorkOrder.deadline_at < now)
    elif overdue is False:
        query = query.where(
            or_(~running, WorkOrder.deadline_at.is_(None), WorkOrder.deadline_at >= now)
        )
    return _page(db_session, query, limit, offset)


def review_queue(*, db_session: Session, limit: int = 50, offset: int = 0) -> Page:
    """Orders waiting for an agent, newest first."""
    query = select(WorkOrder).where(WorkOrder.state == State.REVIEW.value)
    return _page(db_session, query, limit, offset)


def deadline_units(*, db_session: Session, orders: Iterable[WorkOrder]) -> dict[str, str]:
    """The deadline unit (working days or hours) of each category of `orders`."""
    codes = {o.category_code for o in orders if o.category_code}
    if not codes:
        return {}
    rows = db_session.execute(
        select(Category.code, Category.deadline_unit).where(Category.code.in_(codes))
    )
    return {code: unit for code, unit in rows}


def deadline_status_of(
    order: WorkOrder, units: dict[str, str], now: datetime
) -> DeadlineStatus | None:
    """None while no handling clock runs (not at a department, or no deadline)."""
    if order.deadline_at is None or order.dispatched_at is None:
        return None
    if order.state not in workflow.AT_DEPARTMENT:
        return None
    return workflow.deadline_status(
        order.dispatched_at,
        order.deadline_at,
        now,
        unit=units.get(order.category_code or "", "working_days"),
    )


def phone_spellings(phone: str) -> list[str]:
    """The ways one number may have been stored: as typed, digits only, with +86, grouped."""
    digits = re.sub(r"[^0-9]", "", phone)
    national = digits
    if len(digits) == 15 and digits.startswith("0086"):
        national = digits[4:]
    elif len(digits) == 13 and digits.startswith("86"):
        national = digits[2:]
    spellings = [phone.strip(), digits, national]
    if national:
        spellings += [f"+86{national}", f"+86 {national}", f"86{national}", f"0086{national}"]
    if len(national) == 11 and national.startswith("1"):
        groups = (national[:3], national[3:7], national[7:])
        for separator in ("-", " "):
            grouped = separator.join(groups)
            spellings += [grouped, f"+86 {grouped}", f"+86{separator}{grouped}"]
    return list(dict.fromkeys(s for s in spellings if s))


def caller_appeals(
    *, db_session: Session, phone: str, limit: int
) -> list[tuple[WorkOrder, Appeal, str | None]]:
    """A caller's orders with their appeals and category paths, newest first; the number is
    matched in every spelling of :func:`phone_spellings`."""
    rows = db_session.execute(
        select(WorkOrder, Appeal, Category.path)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .outerjoin(Category, WorkOrder.category_code == Category.code)
        .where(Appeal.caller_phone.in_(phone_spellings(phone)))
        .order_by(Appeal.received_at.desc(), Appeal.id.desc())
        .limit(limit)
    )
    return [(order, appeal, path) for order, appeal, path in rows]
