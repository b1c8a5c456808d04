"""Operational endpoints: end-to-end worker probes."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from router.workorders.workflow import Role
from service import diagnostics
from service.api.deps import DbSession
from service.api.security import require_roles

router = APIRouter(
    prefix="/api/v1/system",
    tags=["system"],
    # Operators only: a probe writes a row and queues a task.
    dependencies=[Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))],
)


class ProbeRead(BaseModel):
    id: str
    state: str
    created_at: datetime
    executed_at: datetime | None
    worker: str
    runs: int


def _read(probe: diagnostics.Probe) -> ProbeRead:
    return ProbeRead(
        id=probe.id,
        state=probe.state,
        created_at=probe.created_at,
        executed_at=probe.executed_at,
        worker=probe.worker,
        runs=probe.runs,
    )


@router.post("/probes", status_code=202, response_model=ProbeRead)
def create_probe(db_session: DbSession) -> ProbeRead:
    """Queue a probe task; poll it to see a worker execute it."""
    return _read(diagnostics.create_probe(db_session=db_session))


@router.get("/probes/{probe_id}", response_model=ProbeRead, responses={404: {}})
def get_probe(probe_id: str, db_session: DbSession) -> ProbeRead:
    return _read(diagnostics.get_probe_or_raise(db_session=db_session, probe_id=probe_id))
