"""Satisfaction callbacks: the agents' callback queue and results."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["callbacks"])
