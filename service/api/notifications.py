"""Notifications for departments and supervisors."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["notifications"])
