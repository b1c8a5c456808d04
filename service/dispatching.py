"""Dispatch side effects: record a delivery per department and channel after a dispatch action.

Departments without push delivery (no RabbitMQ configured and no webhook) read their work orders
through the API inbox; nothing is queued for them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.models import Department, WorkOrder
from service.config import Settings
from service.delivery.models import Delivery
from service.delivery.service import channels_for, record_dispatch_many


def record_deliveries(
    *, db_session: Session, work_order: WorkOrder, settings: Settings
) -> list[Delivery]:
    """Deliveries for the lead and each assisting department of a freshly dispatched order.

    One query for the departments and one batch for the deliveries (see `record_dispatch_many`):
    this runs in every auto-dispatching intake transaction.
    """
    codes = list(
        dict.fromkeys(
            c for c in (work_order.department_code, *work_order.assisting_department_codes) if c
        )
    )
    if not codes:
        return []
    departments = {
        department.code: department
        for department in db_session.scalars(select(Department).where(Department.code.in_(codes)))
    }
    rabbitmq = bool(settings.delivery_amqp_url)
    channels = {
        code: channels_for(departments[code], rabbitmq=rabbitmq)
        for code in codes
        if code in departments
    }
    if not any(channels.values()):
        return []
    return record_dispatch_many(db_session=db_session, work_order=work_order, channels=channels)
