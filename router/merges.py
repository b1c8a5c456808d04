"""Merged appeals (并单): persisted merge groups and their rules."""

from __future__ import annotations
