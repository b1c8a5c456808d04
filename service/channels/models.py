"""Tables the intake channels need: WeChat replay protection and WeChat message provenance.

`wechat_nonces` holds the nonce of every signed WeChat POST for twice the replay window (a
timestamp may be up to one window in the future), so a captured request cannot be sent again.
`wechat_messages` links a WeChat message (its MsgId) to the appeal it became and keeps the
citizen's openid (FromUserName), which the appeal itself has no column for.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow

__all__ = ["WechatMessage", "WechatNonce"]


class WechatNonce(Base):
    """A nonce already used by a signed WeChat request (pruned after twice the window)."""

    __tablename__ = "wechat_nonces"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WechatMessage(Base):
    """One WeChat message that became an appeal: who sent it, to which account."""

    __tablename__ = "wechat_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_key: Mapped[str] = mapped_column(String(128), unique=True)
    open_id: Mapped[str] = mapped_column(String(64), index=True)
    account: Mapped[str] = mapped_column(String(64), default="")
    appeal_id: Mapped[int] = mapped_column(ForeignKey("appeals.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
