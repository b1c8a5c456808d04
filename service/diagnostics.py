"""End-to-end worker probes: the API records a probe and queues `system.probe`; the worker marks it.

Operators (and the tests) use a probe to prove that a task published by the API is executed by a
worker through the configured broker.
"""

from __future__ import annotations

import socket
import uuid
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, Session, mapped_column

from router.errors import NotFound
from router.orm import Base, utcnow
from service import outbox
from service.worker import names


class Probe(Base):
    __tablename__ = "worker_probes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    executed_at: Mapped[datetime | None]
    worker: Mapped[str] = mapped_column(String(128), default="")
    runs: Mapped[int] = mapped_column(default=0)

    @property
    def state(self) -> str:
        return "executed" if self.executed_at else "queued"


def create_probe(*, db_session: Session) -> Probe:
    probe = Probe(id=str(uuid.uuid4()))
    db_session.add(probe)
    db_session.flush()
    outbox.enqueue(db_session, names.PROBE, probe_id=probe.id)
    return probe


def get_probe_or_raise(*, db_session: Session, probe_id: str) -> Probe:
    probe = db_session.get(Probe, probe_id)
    if probe is None:
        raise NotFound(f"probe {probe_id} not found")
    return probe


def execute_probe(*, db_session: Session, probe_id: str) -> Probe | None:
    """Mark a probe executed; a duplicate delivery only counts the run."""
    probe = db_session.get(Probe, probe_id, with_for_update=True)
    if probe is None:
        return None
    probe.runs += 1
    if probe.executed_at is None:
        probe.executed_at = utcnow()
        probe.worker = socket.gethostname()
    db_session.flush()
    return probe
