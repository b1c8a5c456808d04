"""Sign-in endpoints: bearer tokens for API clients, a session cookie for the pages, and `me`.

Bad credentials answer 401 with `WWW-Authenticate: Bearer` and the same detail whatever was
wrong (unknown user, wrong password, deactivated account); the audit log records which. The
failure response is returned rather than raised so that the unit of work commits its audit entry.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from router.errors import Unauthorized
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
from service.auth.security import create_access_token
from service.config import get_settings

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
    401: {"description": "Bad credentials (`WWW-Authenticate: Bearer`)"}
}


def _sign_in(request: Request, db_session: DbSession, form: OAuth2PasswordRequestForm) -> TokenRead:
    user = auth_service.authenticate(
        db_session=db_session,
        username=form.username,
        password=form.password,
        remote_addr=remote_addr(request),
    )
    if user is None:
        raise Unauthorized(BAD_CREDENTIALS)
    settings = get_settings()
    ttl = token_ttl(settings)
    token = create_access_token(
        username=user.username,
        role=user.role,
        department_code=user.department_code,
        secret_key=settings.secret_key.get_secret_value(),
        ttl=ttl,
    )
    return TokenRead(access_token=token, expires_in=int(ttl.total_seconds()))


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


@router.post("/login", response_model=TokenRead, responses=UNAUTHORIZED_RESPONSE)
def login(
    request: Request, response: Response, db_session: DbSession, form: LoginForm
) -> TokenRead | JSONResponse:
    """Like `/token`, and also sets the HttpOnly session cookie the pages use."""
    try:
        token = _sign_in(request, db_session, form)
    except Unauthorized as exc:
        return _bad_credentials(exc)
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
    """Clear the session cookie. Always succeeds, also with an expired or missing session.

    Bearer tokens are not revoked (they are stateless): clients discard them, and they expire.
    """
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
