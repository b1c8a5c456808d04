"""Celery tasks for model training."""

from __future__ import annotations
