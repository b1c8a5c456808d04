"""Accounts and API keys: sign-in, user management, department keys, demo accounts.

Functions are keyword-only with the session first and only flush; the request or command that
calls them owns the transaction. Usernames are case-insensitive (stored lower-case).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from router.catalogue.models import Department
from router.errors import Conflict, InvalidInput, NotFound
from router.orm import utcnow
from router.workorders.workflow import Role
from service.auth import audit
from service.auth.models import ROLES, ApiKey, AuthSession, User
from service.auth.security import (
    API_KEY_PREFIX_LENGTH,
    SYSTEM_ACTOR,
    Actor,
    api_key_matches,
    generate_api_key,
    hash_password,
    verify_password,
)

__all__ = [
    "DEMO_ACCOUNTS",
    "MIN_PASSWORD_LENGTH",
    "CreatedApiKey",
    "authenticate",
    "create_api_key",
    "create_user",
    "demo_username",
    "get_active_api_key",
    "get_active_session",
    "get_active_user",
    "get_api_key_or_raise",
    "get_user",
    "get_user_or_raise",
    "list_api_keys",
    "list_users",
    "normalize_username",
    "revoke_api_key",
    "revoke_session",
    "seed_demo_accounts",
    "start_session",
    "update_user",
]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 128
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_.\-]{1,63}")
# last_used_at is a hint for admins, not an access log: write it at most this often per key.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)

DEMO_ACCOUNTS = (
    ("agent", "演示话务员", Role.AGENT),
    ("supervisor", "演示班长", Role.SUPERVISOR),
    ("admin", "演示管理员", Role.ADMIN),
)


def normalize_username(username: str) -> str:
    return username.strip().lower()


def demo_username(department_code: str) -> str:
    """The demo account of a department: `dept_` plus the code in lower case (`dept_a1-01`)."""
    return f"dept_{department_code.lower()}"


# --- users --------------------------------------------------------------------------------


def get_user(*, db_session: Session, username: str) -> User | None:
    return db_session.scalar(select(User).where(User.username == normalize_username(username)))


def get_user_or_raise(*, db_session: Session, user_id: int) -> User:
    user = db_session.get(User, user_id)
    if user is None:
        raise NotFound(f"用户 {user_id} 不存在")
    return user


def get_active_user(*, db_session: Session, username: str) -> User | None:
    """The user a token names, if it still exists and is active (checked on every request)."""
    user = get_user(db_session=db_session, username=username)
    return user if user is not None and user.active else None


def authenticate(
    *, db_session: Session, username: str, password: str, remote_addr: str | None = None
) -> User | None:
    """The user whose credentials these are, or None; audited either way.

    An unknown username, a wrong password and a deactivated account take the same time and give
    the same answer; only the audit entry says which it was. A hash made with outdated argon2
    parameters is replaced on success.
    """
    name = normalize_username(username)
    user = get_user(db_session=db_session, username=name) if len(name) <= 64 else None
    ok, new_hash = verify_password(password, user.password_hash if user else None)
    if user is None or not ok or not user.active:
        reason = "unknown_user" if user is None else "bad_password" if not ok else "inactive"
        audit.record(
            db_session=db_session,
            actor=Actor(username=name[:64] or "-", role="anonymous", remote_addr=remote_addr),
            action="auth.login_failed",
            target_type="user",
            target_id=user.id if user else None,
            detail={"reason": reason},
        )
        return None
    if new_hash is not None:
        user.password_hash = new_hash
    user.last_login_at = utcnow()
    audit.record(
        db_session=db_session,
        actor=actor_for_user(user, remote_addr=remote_addr),
        action="auth.login",
        target_type="user",
        target_id=user.id,
    )
    return user


# --- sign-in sessions ----------------------------------------------------------------------


def start_session(
    *, db_session: Session, user: User, token_id: str, issued_at: datetime, expires_at: datetime
) -> AuthSession:
    """Record an issued token so that it can be revoked; the user's expired sessions are
    deleted on the way (the table holds live sessions, not a history: the audit log is that)."""
    db_session.execute(
        delete(AuthSession).where(
            AuthSession.username == user.username, AuthSession.expires_at < issued_at
        )
    )
    row = AuthSession(
        id=token_id, username=user.username, issued_at=issued_at, expires_at=expires_at
    )
    db_session.add(row)
    db_session.flush()
    return row


def get_active_session(
    *, db_session: Session, token_id: str, username: str, now: datetime | None = None
) -> AuthSession | None:
    """The unrevoked, unexpired session of this token and user, or None (checked per request)."""
    row = db_session.get(AuthSession, token_id)
    if row is None or row.revoked_at is not None or row.username != username:
        return None
    return row if row.expires_at > (now or utcnow()) else None


def revoke_session(*, db_session: Session, token_id: str, now: datetime | None = None) -> bool:
    """Revoke a token at once in every process; whether it was live."""
    row = db_session.get(AuthSession, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = now or utcnow()
    db_session.flush()
    return True


def actor_for_user(user: User, *, remote_addr: str | None = None) -> Actor:
    return Actor(
        username=user.username,
        role=user.role,
        department_code=user.department_code,
        kind="user",
        display_name=user.display_name,
        remote_addr=remote_addr,
    )


def list_users(
    *,
    db_session: Session,
    role: str | None = None,
    department_code: str | None = None,
    active: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[User], int]:
    query = select(User)
    if role is not None:
        query = query.where(User.role == role)
    if department_code is not None:
        query = query.where(User.department_code == department_code)
    if active is not None:
        query = query.where(User.active == active)
    total = db_session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db_session.scalars(query.order_by(User.username).limit(limit).offset(offset))
    return list(rows), total


def _check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"密码长度须为 {MIN_PASSWORD_LENGTH}–{MAX_PASSWORD_LENGTH} 个字符")


def _check_role(*, db_session: Session, role: str, department_code: str | None) -> None:
    if role not in ROLES:
        raise InvalidInput(f"未知角色 {role!r}（可选：{', '.join(ROLES)}）")
    if role == Role.DEPARTMENT:
        if not department_code:
            raise InvalidInput("部门用户必须指定所属部门 department_code")
        if db_session.get(Department, department_code) is None:
            raise InvalidInput(f"部门 {department_code} 不存在")
    elif department_code is not None:
        raise InvalidInput(f"角色 {role} 不属于任何部门，不能指定 department_code")


def create_user(
    *,
    db_session: Session,
    actor: Actor,
    username: str,
    password: str,
    role: str,
    department_code: str | None = None,
    display_name: str = "",
    password_hash: str | None = None,
) -> User:
    """A new active account; `Conflict` if the username is taken. Audited as `user.create`.

    `password_hash` lets the demo seeding hash one shared password once instead of per account.
    """
    name = normalize_username(username)
    if not USERNAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            "用户名须为 2–64 位小写字母、数字、下划线、点或连字符，并以字母或数字开头"
        )
    if password_hash is None:
        _check_password(password)
    _check_role(db_session=db_session, role=role, department_code=department_code)
    if get_user(db_session=db_session, username=name) is not None:
        raise Conflict(f"用户名 {name} 已存在")
    user = User(
        username=name,
        display_name=display_name.strip(),
        password_hash=password_hash or hash_password(password),
        role=role,
        department_code=department_code,
        active=True,
        created_at=utcnow(),
    )
    try:
        with db_session.begin_nested():
            db_session.add(user)
            db_session.flush()
    except IntegrityError:  # a concurrent request created the same username
        raise Conflict(f"用户名 {name} 已存在") from None
    audit.record(
        db_session=db_session,
        actor=actor,
        action="user.create",
        target_type="user",
        target_id=user.id,
        detail={"username": name, "role": role, "department_code": department_code},
    )
    return user


@dataclass(frozen=True, kw_only=True)
class UserChanges:
    """Fields to change; None means unchanged (`department_code` follows `role` when given)."""

    display_name: str | None = None
    password: str | None = None
    role: str | None = None
    department_code: str | None = None
    active: bool | None = None


def update_user(*, db_session: Session, actor: Actor, user: User, changes: UserChanges) -> User:
    """Change an account; audited as `user.update` (naming the fields, never the password).

    A deactivated user's tokens stop working at their next request, since every request re-reads
    the account; a new password revokes all the user's sign-in sessions.
    """
    changed: dict[str, object] = {}
    own_account = actor.kind == "user" and actor.username == user.username
    demotes = changes.active is False or changes.role not in (None, user.role)
    if own_account and demotes:  # an admin locking themselves out helps no one
        raise InvalidInput("不能停用自己的账号或修改自己的角色")
    if changes.role is not None or changes.department_code is not None:
        role = changes.role if changes.role is not None else user.role
        department_code = changes.department_code
        if department_code is None and role == Role.DEPARTMENT:
            department_code = user.department_code
        _check_role(db_session=db_session, role=role, department_code=department_code)
        if role != user.role:
            changed["role"] = role
        if department_code != user.department_code:
            changed["department_code"] = department_code
        user.role, user.department_code = role, department_code
    if changes.display_name is not None and changes.display_name.strip() != user.display_name:
        user.display_name = changes.display_name.strip()
        changed["display_name"] = user.display_name
    if changes.active is not None and changes.active != user.active:
        user.active = changes.active
        changed["active"] = changes.active
    if changes.password is not None:
        _check_password(changes.password)
        user.password_hash = hash_password(changes.password)
        changed["password"] = "changed"
        # whoever held the old password may hold a token too: every session signs in again
        db_session.execute(
            update(AuthSession)
            .where(AuthSession.username == user.username, AuthSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    db_session.flush()
    if changed:
        audit.record(
            db_session=db_session,
            actor=actor,
            action="user.update",
            target_type="user",
            target_id=user.id,
            detail={"username": user.username, **changed},
        )
    return user


def seed_demo_accounts(
    *, db_session: Session, password: str, department_codes: Iterable[str]
) -> list[str]:
    """Create the missing demo accounts and return their usernames; existing ones are untouched.

    One account per role (`agent`, `supervisor`, `admin`) and `dept_<code>` for each department,
    all with `password` (HOTLINE_DEMO_PASSWORD). Running it again creates nothing.
    """
    _check_password(password)
    wanted: list[tuple[str, str, str, str | None]] = [
        (username, display_name, role.value, None) for username, display_name, role in DEMO_ACCOUNTS
    ]
    codes = sorted(set(department_codes))
    rows = db_session.execute(
        select(Department.code, Department.name).where(Department.code.in_(codes))
    )
    names = {code: name for code, name in rows}
    for code in codes:
        if code not in names:
            raise InvalidInput(f"部门 {code} 不存在")
        wanted.append((demo_username(code), names[code], Role.DEPARTMENT.value, code))
    existing = set(
        db_session.scalars(select(User.username).where(User.username.in_([w[0] for w in wanted])))
    )
    missing = [w for w in wanted if w[0] not in existing]
    shared_hash = hash_password(password) if missing else ""
    for username, display_name, role, department_code in missing:
        create_user(
            db_session=db_session,
            actor=SYSTEM_ACTOR,
            username=username,
            password=password,
            password_hash=shared_hash,
            role=role,
            department_code=department_code,
            display_name=display_name,
        )
    return [w[0] for w in missing]


# --- API keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedApiKey:
    key: ApiKey
    secret: str  # returned to the admin once; only its hash is stored


def create_api_key(
    *, db_session: Session, actor: Actor, department_code: str, name: str
) -> CreatedApiKey:
    """A new key for a department system; `NotFound` if the department does not exist."""
    if db_session.get(Department, department_code) is None:
        raise NotFound(f"部门 {department_code} 不存在")
    name = name.strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("密钥名称须为 1–64 个字符")
    generated = generate_api_key()
    key = ApiKey(
        department_code=department_code,
        name=name,
        prefix=generated.prefix,
        key_hash=generated.key_hash,
        created_at=utcnow(),
    )
    db_session.add(key)
    db_session.flush()
    audit.record(
        db_session=db_session,
        actor=actor,
        action="api_key.create",
        target_type="api_key",
        target_id=key.id,
        detail={"department_code": department_code, "name": name, "prefix": key.prefix},
    )
    return CreatedApiKey(key=key, secret=generated.secret)


def get_api_key_or_raise(*, db_session: Session, api_key_id: int) -> ApiKey:
    key = db_session.get(ApiKey, api_key_id)
    if key is None:
        raise NotFound(f"API 密钥 {api_key_id} 不存在")
    return key


def list_api_keys(
    *, db_session: Session, department_code: str | None = None, include_revoked: bool = False
) -> list[ApiKey]:
    query = select(ApiKey)
    if department_code is not None:
        query = query.where(ApiKey.department_code == department_code)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(db_session.scalars(query.order_by(ApiKey.department_code, ApiKey.id)))


def get_active_api_key(
    *, db_session: Session, secret: str, now: datetime | None = None
) -> ApiKey | None:
    """The unrevoked key with this secret, or None; records when it was last used."""
    if len(secret) < API_KEY_PREFIX_LENGTH or len(secret) > 256:
        return None
    candidates = db_session.scalars(
        select(ApiKey).where(
            ApiKey.prefix == secret[:API_KEY_PREFIX_LENGTH], ApiKey.revoked_at.is_(None)
        )
    ).all()
    found = None
    for candidate in candidates:  # compare every candidate: no early exit to time
        if api_key_matches(secret, candidate.key_hash):
            found = candidate
    if found is not None:
        at = now or utcnow()
        if found.last_used_at is None or at - found.last_used_at >= API_KEY_TOUCH_INTERVAL:
            found.last_used_at = at
            db_session.flush()
    return found


def revoke_api_key(*, db_session: Session, actor: Actor, key: ApiKey) -> ApiKey:
    """Revoke a key (it stops working at once); revoking it again changes nothing."""
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        db_session.flush()
        audit.record(
            db_session=db_session,
            actor=actor,
            action="api_key.revoke",
            target_type="api_key",
            target_id=key.id,
            detail={"department_code": key.department_code, "name": key.name, "prefix": key.prefix},
        )
    return key
