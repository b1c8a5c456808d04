"""Model registry: versions, training jobs, activation and rollback."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["models"])
