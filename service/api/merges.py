"""Duplicate suggestions, merge and unmerge (并单), hotspots."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["merges"])
