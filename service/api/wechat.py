"""WeChat official-account server endpoint."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["wechat"])
