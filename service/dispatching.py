"""Dispatch side effects: record a delivery per department and channel after a dispatch action.

Departments without push delivery (no RabbitMQ configured and no webhook) read their work orders
through the API inbox; nothing is queued for them.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.catalogue.models import Department
from router.workorders.models import WorkOrder
from service.config import Settings
from service.delivery.models import Delivery
from service.delivery.service import channels_for, record_dispatches


def record_deliveries(
    *, db_session: Session, work_order: WorkOrder, settings: Settings
) -> list[Delivery]:
    """Deliveries for the lead and each assisting department of a freshly dispatched order."""
    return record_deliveries_many(
        db_session=db_session, work_orders=[work_order], settings=settings
    )


def record_deliveries_many(
    *, db_session: Session, work_orders: Sequence[WorkOrder], settings: Settings
) -> list[Delivery]:
    """`record_deliveries` for several freshly dispatched orders.

    One query for the departments and one batch for the deliveries (see `record_dispatches`):
    this runs in every auto-dispatching intake transaction.
    """
    wanted = [
        (
            order,
            list(
                dict.fromkeys(
                    c for c in (order.department_code, *order.assisting_department_codes) if c
                )
            ),
        )
        for order in work_orders
    ]
    codes = sorted({code for _, order_codes in wanted for code in order_codes})
    if not codes:
        return []
    departments = {
        department.code: department
        for department in db_session.scalars(select(Department).where(Department.code.in_(codes)))
    }
    rabbitmq = bool(settings.delivery_amqp_url)
    dispatches = []
    for order, order_codes in wanted:
        channels = {
            code: channels_for(departments[code], rabbitmq=rabbitmq)
            for code in order_codes
            if code in departments
        }
        if any(channels.values()):
            dispatches.append((order, channels))
    if not dispatches:
        return []
    return record_dispatches(db_session=db_session, dispatches=dispatches)
