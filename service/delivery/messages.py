"""The message a department receives for a dispatched work order (the same on every channel).

Body (UTF-8 JSON, keys sorted, no insignificant whitespace)::

    {
      "type": "work_order.dispatched", "version": 1,
      "delivery_id": "20261123-0000042:1:housing:rabbitmq",   unique per delivery; deduplicate
      "dispatch_id": "20261123-0000042:1",                    <number>:<dispatch sequence>
      "department_code": "housing", "role": "lead" | "assisting",
      "work_order": {"number", "state", "category_code", "priority", "department_code",
                     "assisting_department_codes", "district_code", "street_code", "escalated",
                     "dispatched_at", "accept_deadline_at", "deadline_at"},
      "appeal": {"channel", "title", "text", "appeal_type", "caller_name", "caller_phone",
                 "address", "latitude", "longitude", "attachments", "received_at"}
    }

Times are ISO 8601 in UTC. The department accepts (签收) through the API with the order number.

Personal data goes to the lead department only: it calls the citizen back. An assisting
department (协办) gets `caller_name` and `caller_phone` masked and every phone, ID-card and
bank-card number and e-mail address in `title` and `text` masked (`service.auth.masking`); it
works on the problem, not with the caller.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from router.workorders.models import Appeal, WorkOrder
from service.auth.masking import mask_name, mask_phone, mask_text

__all__ = ["MESSAGE_TYPE", "MESSAGE_VERSION", "build_message", "encode"]

MESSAGE_TYPE = "work_order.dispatched"
MESSAGE_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def build_message(
    *,
    delivery_id: str,
    dispatch_id: str,
    department_code: str,
    work_order: WorkOrder,
    appeal: Appeal,
) -> dict[str, Any]:
    role = "lead" if department_code == work_order.department_code else "assisting"
    personal = {
        "title": appeal.title,
        "text": appeal.text,
        "caller_name": appeal.caller_name,
        "caller_phone": appeal.caller_phone,
    }
    if role != "lead":
        personal = {
            "title": mask_text(appeal.title),
            "text": mask_text(appeal.text),
            "caller_name": mask_name(appeal.caller_name),
            "caller_phone": mask_phone(appeal.caller_phone),
        }
    return {
        "type": MESSAGE_TYPE,
        "version": MESSAGE_VERSION,
        "delivery_id": delivery_id,
        "dispatch_id": dispatch_id,
        "department_code": department_code,
        "role": role,
        "work_order": {
            "number": work_order.number,
            "state": work_order.state,
            "category_code": work_order.category_code,
            "priority": work_order.priority,
            "department_code": work_order.department_code,
            "assisting_department_codes": list(work_order.assisting_department_codes),
            "district_code": work_order.district_code,
            "street_code": work_order.street_code,
            "escalated": work_order.escalated,
            "dispatched_at": _iso(work_order.dispatched_at),
            "accept_deadline_at": _iso(work_order.accept_deadline_at),
            "deadline_at": _iso(work_order.deadline_at),
        },
        "appeal": {
            "channel": appeal.channel,
            "title": personal["title"],
            "text": personal["text"],
            "appeal_type": appeal.appeal_type,
            "caller_name": personal["caller_name"],
            "caller_phone": personal["caller_phone"],
            "address": appeal.address,
            "latitude": appeal.latitude,
            "longitude": appeal.longitude,
            "attachments": list(appeal.attachments),
            "received_at": _iso(appeal.received_at),
        },
    }


def encode(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON with sorted keys."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(
        "utf-8"
    )
