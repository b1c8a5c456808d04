"""Supervisor statistics and CSV export."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["statistics"])
