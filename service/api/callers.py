"""A caller's earlier appeals."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["callers"])
