"""API tests use the fixtures of tests/conftest.py (demo model, seeded database, client, login)."""

from __future__ import annotations

DEMO_PASSWORD = "test-demo-password"  # the same as tests/conftest.py; kept for older imports
