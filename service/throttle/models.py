"""The shared store of the rate limits: one counter per scope, key and fixed time window.

A row counts the hits of one key (`ip:203.0.113.9`, `account:admin`, `wechat:<openid>`) in one
window of one scope (`login.account`, `intake.caller`, ...); `window_start` is in epoch seconds,
`expires_at` says when the row no longer counts for anything and may be deleted.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base

__all__ = ["RateCounter"]


class RateCounter(Base):
    """Hits of one key in one window of one limit."""

    __tablename__ = "rate_counters"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
