"""Dead-letter list for supervisors."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["dead-letters"])
