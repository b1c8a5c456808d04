"""Sign-in endpoints: bearer tokens for API clients, a session cookie for the pages, and `me`.

Bad credentials answer 401 with `WWW-Authenticate: Bearer` and the same detail whatever was
wrong (unknown user, wrong password, deactivated account); the audit log records which. The
failure response is returned rather than raised so that the unit of work commits its audit entry.

Failed sign-ins are counted per account and per client address in the shared store
(`service.throttle`, so across every API process): past `HOTLINE_LOGIN_MAX_FAILURES_PER_ACCOUNT`
or `..._PER_ADDRESS` failures within `HOTLINE_LOGIN_FAILURE_WINDOW_SECONDS`, sign-in answers 429
with `Retry-After` before any password is hashed (hashing under a flood of guesses starved the
other requests of CPU). A successful sign-in clears its account's failures.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from router.errors import Unauthorized
from router.orm import utcnow
from service.api.deps import DbSession
from service.api.errors import error_body
from service.api.security import (
    SESSION_COOKIE,
    ApiKeySecret,
    BearerToken,
    CurrentActor,
    SessionToken,
    remote_addr,
    resolve_actor,
    session_cookie_secure,
    token_ttl,
)
from service.auth import audit
from service.auth import service as auth_service
from service.auth.security import (
    Actor,
    create_access_token,
    decode_access_token,
    new_token_id,
)
from service.config import Settings, get_settings
from service.throttle import service as throttle
from service.throttle.service import Limit

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

LoginForm = Annotated[OAuth2PasswordRequestForm, Depends()]
BAD_CREDENTIALS = "用户名或密码错误"


class TokenRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int  # seconds


class ActorRead(BaseModel):
    username: str
    role: str
    department_code: str | None
    kind: str
    display_name: str


UNAUTHORIZED_RESPONSE: dict[int | str, dict[str, object]] = {
    401: {"description": "Bad credentials (`WWW-Authenticate: Bearer`)"},
    429: {"description": "Too many failed sign-ins for the account or address (`Retry-After`)"},
}


class LoginThrottled(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__("login throttled")
        self.retry_after = retry_after


def _failure_limits(settings: Settings) -> tuple[Limit, Limit]:
    window = settings.login_failure_window_seconds
    return (
        Limit("login.account", settings.login_max_failures_per_account, window),
        Limit("login.address", settings.login_max_failures_per_address, window),
    )


def _sign_in(request: Request, db_session: DbSession, form: OAuth2PasswordRequestForm) -> TokenRead:
    settings = get_settings()
    address = remote_addr(request)
    account_limit, address_limit = _failure_limits(settings)
    account_key = f"account:{auth_service.normalize_username(form.username)[:64]}"
    counted = ((account_limit, account_key), (address_limit, f"ip:{address or 'unknown'}"))
    # Counted in the request's own transaction (committed with its audit entry, also on a
    # failure, which is answered rather than raised): a second session would wait on SQLite's
    # write lock held by the first.
    waits = {
        limit.scope: throttle.exceeded(db_session=db_session, limit=limit, key=key)
        for limit, key in counted
    }
    refused = {scope: wait for scope, wait in waits.items() if wait is not None}
    if refused:
        audit.record(
            db_session=db_session,
            actor=Actor(username=account_key[8:] or "-", role="anonymous", remote_addr=address),
            action="auth.login_throttled",
            target_type="user",
            detail={"limits": sorted(refused)},
        )
        raise LoginThrottled(max(refused.values()))
    user = auth_service.authenticate(
        db_session=db_session,
        username=form.username,
        password=form.password,
        remote_addr=address,
    )
    if user is None:
        for limit, key in counted:
            throttle.record(db_session=db_session, limit=limit, key=key)
        raise Unauthorized(BAD_CREDENTIALS)
    throttle.reset(db_session=db_session, limit=account_limit, key=account_key)
    ttl = token_ttl(settings)
    issued_at, token_id = utcnow(), new_token_id()
    auth_service.start_session(
        db_session=db_session,
        user=user,
        token_id=token_id,
        issued_at=issued_at,
        expires_at=issued_at + ttl,
    )
    token = create_access_token(
        username=user.username,
        role=user.role,
        department_code=user.department_code,
        secret_key=settings.secret_key.get_secret_value(),
        ttl=ttl,
        now=issued_at,
        token_id=token_id,
    )
    return TokenRead(access_token=token, expires_in=int(ttl.total_seconds()))


def _throttled(exc: LoginThrottled) -> JSONResponse:
    seconds = max(math.ceil(exc.retry_after), 1)
    return JSONResponse(
        error_body("TooManyRequests", f"登录失败次数过多，请 {seconds} 秒后再试"),
        status_code=429,
        headers={"Retry-After": str(seconds)},
    )


def _bad_credentials(exc: Unauthorized) -> JSONResponse:
    return JSONResponse(
        error_body("Unauthorized", exc.detail),
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.post("/token", response_model=TokenRead, responses=UNAUTHORIZED_RESPONSE)
def issue_token(
    request: Request, db_session: DbSession, form: LoginForm
) -> TokenRead | JSONResponse:
    """OAuth2 password flow: form fields `username` and `password` → a bearer token."""
    try:
        return _sign_in(request, db_session, form)
    except Unauthorized as exc:
        return _bad_credentials(exc)
    except LoginThrottled as exc:
        return _throttled(exc)


@router.post("/login", response_model=TokenRead, responses=UNAUTHORIZED_RESPONSE)
def login(
    request: Request, response: Response, db_session: DbSession, form: LoginForm
) -> TokenRead | JSONResponse:
    """Like `/token`, and also sets the HttpOnly session cookie the pages use."""
    try:
        token = _sign_in(request, db_session, form)
    except Unauthorized as exc:
        return _bad_credentials(exc)
    except LoginThrottled as exc:
        return _throttled(exc)
    response.set_cookie(
        SESSION_COOKIE,
        token.access_token,
        max_age=token.expires_in,
        path="/",
        httponly=True,
        secure=session_cookie_secure(get_settings()),
        samesite="lax",
    )
    return token


@router.post("/logout", status_code=204)
def logout(
    request: Request,
    db_session: DbSession,
    bearer: BearerToken,
    api_key: ApiKeySecret,
    session_token: SessionToken,
) -> Response:
    """Revoke the presented token (bearer or session cookie) at once, in every process, and
    clear the cookie. Always succeeds, also with an expired or missing session."""
    try:
        actor = resolve_actor(
            db_session=db_session,
            bearer=bearer,
            api_key=api_key,
            session_token=session_token,
            address=remote_addr(request),
        )
    except Unauthorized:
        actor = None
    if actor is not None and actor.kind == "user":
        token = bearer if bearer is not None else session_token
        assert token is not None  # a user actor came from one of them
        claims = decode_access_token(token, secret_key=get_settings().secret_key.get_secret_value())
        auth_service.revoke_session(db_session=db_session, token_id=claims.token_id)
        audit.record(db_session=db_session, actor=actor, action="auth.logout")
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        secure=session_cookie_secure(get_settings()),
        samesite="lax",
    )
    return response


@router.get("/me", response_model=ActorRead)
def me(actor: CurrentActor) -> ActorRead:
    """The signed-in actor: a user, or a department system authenticated by its API key."""
    return ActorRead(
        username=actor.username,
        role=actor.role,
        department_code=actor.department_code,
        kind=actor.kind,
        display_name=actor.display_name,
    )
