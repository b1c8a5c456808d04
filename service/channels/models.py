"""Tables the intake channels need (WeChat replay protection, rate limits)."""

from __future__ import annotations
