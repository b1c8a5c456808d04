"""Open311 GeoReport v2: services from the taxonomy, service requests as work orders.

Shapes follow the GeoReport v2 specification (JSON, or XML with the same element names);
errors are `[{"code", "description"}]` (`<errors><error>…`) with a 4xx status. A service is a
leaf category of the taxonomy (service_code = category code). Requests submitted through
Open311 are work orders of channel `open311`; only those are readable through Open311, with
personal data in the description masked (the endpoints are public, as in the specification).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.catalogue.models import Category, Department
from router.errors import AppError
from router.workorders.models import Appeal, WorkOrder
from router.workorders.workflow import State
from service.auth.masking import mask_text

__all__ = [
    "MAX_RESULTS",
    "Open311Error",
    "RequestFilter",
    "get_request",
    "get_service",
    "list_requests",
    "list_services",
    "parse_datetime",
    "render_xml",
]

CHINA_TIME = timezone(timedelta(hours=8))
MAX_RESULTS = 1000
DEFAULT_DAYS = 90
CLOSED_STATES = frozenset({State.CLOSED, State.CALLBACK_DONE})
STATUS_NOTES: dict[str, str] = {
    State.RECEIVED: "诉求已受理，正在分办",
    State.REVIEW: "诉求已受理，正在人工分办",
    State.DISPATCHED: "已派发至承办单位，等待签收",
    State.ACCEPTED: "承办单位已签收，正在办理",
    State.EXTENSION_REQUESTED: "承办单位已申请延期，正在办理",
    State.RETURNED: "正在重新分办",
    State.REPLIED: "承办单位已答复，正在审核",
    State.CLOSED: "已办结",
    State.CALLBACK_DONE: "已办结并完成回访",
    State.REOPENED: "回访不满意，已重新交办",
    State.MERGED: "已并入相同诉求一并办理",
}
_ITEM_TAGS = {
    "services": "service",
    "service_requests": "request",
    "errors": "error",
    "attributes": "attribute",
}


class Open311Error(AppError):
    """An Open311 error: rendered as `[{"code": <status>, "description": ...}]`."""

    def __init__(
        self, status_code: int, description: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(description)
        self.status_code = status_code
        self.headers = dict(headers or {})


def _service(category: Category, groups: Mapping[str, str]) -> dict[str, Any]:
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.path,
        "metadata": False,
        "type": "realtime",
        "keywords": ",".join(category.urgent_keywords or []),
        "group": groups.get(category.parent_code or "", ""),
    }


def _groups(db_session: Session) -> dict[str, str]:
    return dict(
        db_session.execute(select(Category.code, Category.path).where(Category.level == 2)).all()
    )


def list_services(*, db_session: Session) -> list[dict[str, Any]]:
    """Every active leaf category as an Open311 service, grouped by its level-2 path."""
    leaves = db_session.scalars(
        select(Category)
        .where(Category.level == 3, Category.active.is_(True))
        .order_by(Category.code)
    )
    groups = _groups(db_session)
    return [_service(category, groups) for category in leaves]


def get_service(*, db_session: Session, code: str) -> dict[str, Any] | None:
    category = db_session.get(Category, code)
    if category is None or category.level != 3 or not category.active:
        return None
    return _service(category, _groups(db_session))


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(CHINA_TIME).isoformat(timespec="seconds") if value else None


def parse_datetime(name: str, value: str) -> datetime:
    """ISO 8601 (W3C) as Open311 sends it; a naive value is China time."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} 不是 ISO 8601 时间：{value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=CHINA_TIME)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+08:00 has no UTC form
        raise Open311Error(400, f"{name} 超出范围：{value!r}") from None


@dataclass(frozen=True, kw_only=True)
class RequestFilter:
    ids: Sequence[str] = ()
    service_codes: Sequence[str] = ()
    start: datetime | None = None
    end: datetime | None = None
    statuses: Sequence[str] = ()


def _status(order: WorkOrder, master: WorkOrder | None) -> str:
    state = master.state if master is not None else order.state
    return "closed" if state in CLOSED_STATES else "open"


def _request(
    order: WorkOrder,
    *,
    master: WorkOrder | None,
    categories: Mapping[str, str],
    departments: Mapping[str, str],
) -> dict[str, Any]:
    appeal = order.appeal
    media = next((a.get("url") for a in appeal.attachments or [] if a.get("url")), None)
    holder = master if master is not None else order
    return {
        "service_request_id": order.number,
        "status": _status(order, master),
        "status_notes": STATUS_NOTES.get(order.state, ""),
        "service_name": categories.get(order.category_code or ""),
        "service_code": order.category_code,
        "description": mask_text(appeal.text),
        "agency_responsible": departments.get(holder.department_code or ""),
        "service_notice": "",
        "requested_datetime": _iso(appeal.received_at),
        "updated_datetime": _iso(order.updated_at),
        "expected_datetime": _iso(holder.deadline_at),
        "address": appeal.address,
        "address_id": None,
        "zipcode": None,
        "lat": appeal.latitude,
        "long": appeal.longitude,
        "media_url": media,
    }


def _render_requests(db_session: Session, orders: Iterable[WorkOrder]) -> list[dict[str, Any]]:
    orders = list(orders)
    master_ids = {o.master_id for o in orders if o.state == State.MERGED and o.master_id}
    masters = (
        {m.id: m for m in db_session.scalars(select(WorkOrder).where(WorkOrder.id.in_(master_ids)))}
        if master_ids
        else {}
    )
    codes = {o.category_code for o in orders if o.category_code}
    categories = (
        dict(
            db_session.execute(
                select(Category.code, Category.name).where(Category.code.in_(codes))
            ).all()
        )
        if codes
        else {}
    )
    departments = dict(db_session.execute(select(Department.code, Department.name)).all())
    return [
        _request(
            order,
            master=masters.get(order.master_id) if order.master_id else None,
            categories=categories,
            departments=departments,
        )
        for order in orders
    ]


def list_requests(
    *, db_session: Session, where: RequestFilter, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Open311 requests, newest first, at most `MAX_RESULTS` (90 days by default)."""
    query = (
        select(WorkOrder)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(Appeal.channel == "open311")
    )
    if where.ids:
        query = query.where(WorkOrder.number.in_(list(where.ids)))
    else:
        start, end = where.start, where.end
        if start is None and end is None:
            start = (now or datetime.now(UTC)) - timedelta(days=DEFAULT_DAYS)
        if start is not None:
            query = query.where(Appeal.received_at >= start)
        if end is not None:
            query = query.where(Appeal.received_at <= end)
        if where.service_codes:
            query = query.where(WorkOrder.category_code.in_(list(where.service_codes)))
    query = query.order_by(Appeal.received_at.desc(), WorkOrder.id.desc()).limit(MAX_RESULTS)
    rendered = _render_requests(db_session, db_session.scalars(query))
    if where.statuses and not where.ids:
        # The status of a merged order is its master's, so it is filtered after rendering.
        rendered = [r for r in rendered if r["status"] in where.statuses]
    return rendered


def get_request(*, db_session: Session, number: str) -> dict[str, Any] | None:
    order = db_session.scalar(
        select(WorkOrder)
        .join(Appeal, WorkOrder.appeal_id == Appeal.id)
        .where(WorkOrder.number == number, Appeal.channel == "open311")
    )
    if order is None:
        return None
    return _render_requests(db_session, [order])[0]


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _xml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return _CONTROL.sub("", str(value))


def _fill(parent: Element, value: Any, tag: str) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _fill(SubElement(parent, key), inner, key)
    elif isinstance(value, list):
        item_tag = _ITEM_TAGS.get(tag, "item")
        for inner in value:
            _fill(SubElement(parent, item_tag), inner, item_tag)
    elif value is not None:
        parent.text = _xml_value(value)


def render_xml(root_tag: str, value: Any) -> bytes:
    """The GeoReport v2 XML form of a JSON answer (`services`, `service_requests`, `errors`)."""
    root = Element(root_tag)
    _fill(root, value, root_tag)
    return b'<?xml version="1.0" encoding="utf-8"?>' + tostring(root, encoding="unicode").encode()
