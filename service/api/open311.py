"""Open311 GeoReport v2."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["open311"])
