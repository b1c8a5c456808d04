"""Celery tasks for satisfaction callbacks."""

from __future__ import annotations
