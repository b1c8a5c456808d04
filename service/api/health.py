"""Liveness and readiness endpoints."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from service import classification, health
from service.api.responses import LocalTimeJSONResponse
from service.config import get_settings
from service.runtime import get_database

router = APIRouter(tags=["health"])


class CheckRead(BaseModel):
    name: str
    ok: bool
    detail: str


class ReadinessRead(BaseModel):
    status: str
    checks: list[CheckRead]


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadinessRead, responses={503: {"model": ReadinessRead}})
def readyz() -> LocalTimeJSONResponse:
    """Readiness: database migrated, broker reachable, a model active; 503 names what is missing."""
    settings = get_settings()
    checks = [
        health.check_database(get_database()),
        health.check_broker(settings),
        health.check_model(classification.active_model_dir(settings.model_dir)),
    ]
    ready = all(check.ok for check in checks)
    body = ReadinessRead(
        status="ready" if ready else "not ready",
        checks=[CheckRead(name=c.name, ok=c.ok, detail=c.detail) for c in checks],
    )
    return LocalTimeJSONResponse(body.model_dump(), status_code=200 if ready else 503)
