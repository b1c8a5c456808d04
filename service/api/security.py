"""Who is calling: the acting principal of a request, role checks, and department scoping.

Credentials, in order of precedence:

    Authorization: Bearer <token>   people, through the API (token from POST /api/v1/auth/token)
    X-API-Key: <secret>             department systems (delivery and sign-for integration)
    Cookie hotline_session=<token>  people, through the pages (set by POST /api/v1/auth/login)

A credential that is present but not accepted is a 401 (never a silent fall-through to the next
one); a signed-in actor without the needed role is a 403. Each request re-reads the user or key
and the token's sign-in session (`auth_sessions`, by the token's `jti`), so deactivating a user,
revoking a key or signing out takes effect at once in every process. Cookie-authenticated
requests that change something must come from the service's own pages (`service.api.csrf`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session

from router.errors import Forbidden, Unauthorized
from router.workorders.workflow import Role
from service.auth import service as auth_service
from service.auth.security import (
    INVALID_TOKEN,
    Actor,
    decode_access_token,
)
from service.config import Settings, get_settings
from service.runtime import get_database

__all__ = [
    "API_KEY_HEADER",
    "SESSION_COOKIE",
    "Actor",
    "AdminActor",
    "CurrentActor",
    "DepartmentScope",
    "OptionalActor",
    "department_scope",
    "remote_addr",
    "require_roles",
    "resolve_actor",
    "session_cookie_secure",
    "token_ttl",
]

SESSION_COOKIE = "hotline_session"
API_KEY_HEADER = "X-API-Key"
NOT_AUTHENTICATED = "未登录：请提供登录凭证（Bearer 令牌、X-API-Key 或会话 Cookie）"

bearer_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_scheme = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)
cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False)

BearerToken = Annotated[str | None, Depends(bearer_scheme)]
ApiKeySecret = Annotated[str | None, Depends(api_key_scheme)]
SessionToken = Annotated[str | None, Depends(cookie_scheme)]


def token_ttl(settings: Settings) -> timedelta:
    return timedelta(minutes=settings.token_ttl_minutes)


def session_cookie_secure(settings: Settings) -> bool:
    """Whether the session cookie is HTTPS-only: outside development unless configured."""
    if settings.session_cookie_secure is not None:
        return settings.session_cookie_secure
    return settings.environment != "development"


def remote_addr(request: Request) -> str | None:
    return request.client.host if request.client else None


def _actor_from_token(db_session: Session, token: str, address: str | None) -> Actor:
    claims = decode_access_token(token, secret_key=get_settings().secret_key.get_secret_value())
    user = auth_service.get_active_user(db_session=db_session, username=claims.username)
    if user is None:  # deleted or deactivated since the token was issued
        raise Unauthorized(INVALID_TOKEN)
    session = auth_service.get_active_session(
        db_session=db_session, token_id=claims.token_id, username=user.username
    )
    if session is None:  # signed out (revoked), or never issued by this service
        raise Unauthorized(INVALID_TOKEN)
    return auth_service.actor_for_user(user, remote_addr=address)


def _actor_from_api_key(db_session: Session, secret: str, address: str | None) -> Actor:
    key = auth_service.get_active_api_key(db_session=db_session, secret=secret)
    if key is None:
        raise Unauthorized("API 密钥无效或已吊销")
    return Actor(
        username=f"api_key:{key.prefix}",
        role=Role.DEPARTMENT.value,
        department_code=key.department_code,
        kind="api_key",
        display_name=key.name,
        remote_addr=address,
    )


def resolve_actor(
    *,
    db_session: Session,
    bearer: str | None,
    api_key: str | None,
    session_token: str | None,
    address: str | None = None,
) -> Actor | None:
    """The actor of the first credential given, None if none is; `Unauthorized` if refused."""
    if bearer is not None:
        return _actor_from_token(db_session, bearer, address)
    if api_key is not None:
        return _actor_from_api_key(db_session, api_key, address)
    if session_token is not None:
        return _actor_from_token(db_session, session_token, address)
    return None


def get_optional_actor(
    request: Request,
    bearer: BearerToken,
    api_key: ApiKeySecret,
    session_token: SessionToken,
) -> Actor | None:
    """The request's actor, looked up in a session of its own that is closed at once: a request
    waiting in the intake's group commit then holds no pooled connection (with the request's
    session held, as many waiting requests as the pool has connections starved the batch
    leader of one)."""
    if bearer is None and api_key is None and session_token is None:
        return None
    with get_database().session() as db_session:
        return resolve_actor(
            db_session=db_session,
            bearer=bearer,
            api_key=api_key,
            session_token=session_token,
            address=remote_addr(request),
        )


def get_current_actor(actor: Annotated[Actor | None, Depends(get_optional_actor)]) -> Actor:
    if actor is None:
        raise Unauthorized(NOT_AUTHENTICATED)
    return actor


OptionalActor = Annotated[Actor | None, Depends(get_optional_actor)]
CurrentActor = Annotated[Actor, Depends(get_current_actor)]


def require_roles(*roles: str) -> Callable[[Actor], Actor]:
    """A dependency that yields the current actor if it has one of `roles`, else 403.

    actor: Annotated[Actor, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
    """
    allowed = frozenset(str(role) for role in roles)
    if not allowed:
        raise ValueError("require_roles needs at least one role")

    def _require(actor: CurrentActor) -> Actor:
        if actor.role not in allowed:
            raise Forbidden(f"角色 {actor.role} 无权执行此操作")
        return actor

    return _require


AdminActor = Annotated[Actor, Depends(require_roles(Role.ADMIN))]


def department_scope(actor: Actor) -> str | None:
    """The department a query must be limited to, or None when the actor sees every department.

        scope = department_scope(actor)
        if scope is not None:
            query = query.where(WorkOrder.department_code == scope)

    Not found in the scope must answer 404 (as for a missing order), never 403.
    """
    if actor.role != Role.DEPARTMENT:
        return None
    if not actor.department_code:  # the users table forbids this; never widen to "all"
        raise Forbidden("部门账号未关联部门")
    return actor.department_code


def get_department_scope(actor: CurrentActor) -> str | None:
    return department_scope(actor)


DepartmentScope = Annotated[str | None, Depends(get_department_scope)]
