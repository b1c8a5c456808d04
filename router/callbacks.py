"""Satisfaction callbacks (回访): rules and tables."""

from __future__ import annotations
