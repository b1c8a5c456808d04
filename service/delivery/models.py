"""Tables of delivery: one row per (dispatch, department, channel), and the dead-letter list.

`deliveries.delivery_key` is unique: recording the same dispatch twice finds the first row, and a
delivery that is already `sent` is never sent again, which is what makes a dispatch happen once
at the database level however often its task runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow

__all__ = ["CHANNELS", "DEAD_LETTER_KINDS", "STATUSES", "DeadLetter", "Delivery"]

CHANNELS = ("rabbitmq", "webhook")
STATUSES = ("pending", "sent", "failed", "superseded")
DEAD_LETTER_KINDS = ("delivery", "intake")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in values)})"


class Delivery(Base):
    """Handing one dispatch of a work order to one department over one channel.

    `status`: `pending` until the broker confirms (or the webhook answers 2xx), then `sent`;
    `failed` once dead-lettered; `superseded` when the order was dispatched again before this
    delivery went out (it is then never sent).
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint(_one_of("channel", CHANNELS), name="channel"),
        CheckConstraint(_one_of("status", STATUSES), name="status"),
        Index("ix_deliveries_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    work_order_id: Mapped[int] = mapped_column(ForeignKey("work_orders.id"), index=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    channel: Mapped[str] = mapped_column(String(16))
    dispatch_sequence: Mapped[int] = mapped_column(Integer)
    delivery_key: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    @property
    def dispatch_id(self) -> str:
        """`<work-order number>:<sequence>`, shared by every delivery of one dispatch."""
        return self.delivery_key.split(":", 2)[0] + f":{self.dispatch_sequence}"


class DeadLetter(Base):
    """Something that could not be delivered or taken in, kept for a supervisor to resolve.

    `kind` is `delivery` (a work order that did not reach its department; `reference` is the
    delivery key) or `intake` (a channel message that could not become an appeal; `reference`
    is the message or call id).
    """

    __tablename__ = "dead_letters"
    __table_args__ = (
        CheckConstraint(_one_of("kind", DEAD_LETTER_KINDS), name="kind"),
        Index("ix_dead_letters_kind_resolved_at", "kind", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(200), index=True)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
