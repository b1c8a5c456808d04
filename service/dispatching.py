"""Dispatch side effects: record a delivery per department and channel after a dispatch action.

Departments without push delivery (no RabbitMQ configured and no webhook) read their work orders
through the API inbox; nothing is queued for them.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from router.models import Department, WorkOrder
from service.config import Settings
from service.delivery.models import Delivery
from service.delivery.service import channels_for, record_dispatch


def record_deliveries(
    *, db_session: Session, work_order: WorkOrder, settings: Settings
) -> list[Delivery]:
    """Deliveries for the lead and each assisting department of a freshly dispatched order."""
    codes = [work_order.department_code, *work_order.assisting_department_codes]
    rows: list[Delivery] = []
    for code in dict.fromkeys(c for c in codes if c):
        department = db_session.get(Department, code)
        if department is None:
            continue
        channels = channels_for(department, rabbitmq=bool(settings.delivery_amqp_url))
        if channels:
            rows += record_dispatch(
                db_session=db_session,
                work_order=work_order,
                department_code=code,
                channels=channels,
            )
    return rows
