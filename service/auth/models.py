"""Tables of the access layer: user accounts, sign-in sessions, department API keys, the audit log.

No secret is stored in clear: passwords as argon2 hashes, API keys as the SHA-256 of the secret
(the secret is shown once, at creation). The audit log is append-only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from router.orm import Base, BigId, utcnow
from router.workorders.workflow import USER_ROLES

ROLES = tuple(role.value for role in USER_ROLES)


class User(Base):
    """A person who signs in; department users belong to exactly one department."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('agent', 'department', 'supervisor', 'admin')", name="role_known"
        ),
        CheckConstraint(
            "(role = 'department' AND department_code IS NOT NULL)"
            " OR (role <> 'department' AND department_code IS NULL)",
            name="department_role",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    department_code: Mapped[str | None] = mapped_column(ForeignKey("departments.code"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ApiKey(Base):
    """A department system's credential (delivery and sign-for integration)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(8), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One action by one actor: who, as what, did what to which object, from where."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remote_addr: Mapped[str | None] = mapped_column(String(64))


class AuthSession(Base):
    """One issued access token, by its `jti`: checked on every request, revoked by signing out.

    A token whose row is missing or revoked is refused at once in every process, long before it
    expires. Rows past `expires_at` refuse themselves and may be deleted.
    """

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # the token's jti
    username: Mapped[str] = mapped_column(String(64), index=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None]
