"""API schemas of deliveries and dead letters (read-only: supervisors list and resolve them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["DeadLetterList", "DeadLetterRead", "DeliveryRead"]


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    work_order_id: int
    department_code: str
    channel: str
    dispatch_sequence: int
    delivery_key: str
    status: str
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None


class DeadLetterRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    reference: str
    reason: str
    payload: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None


class DeadLetterList(BaseModel):
    items: list[DeadLetterRead]
