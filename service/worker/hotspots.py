"""Celery tasks for duplicates and hotspots."""

from __future__ import annotations
