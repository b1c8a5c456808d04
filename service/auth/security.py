"""Security primitives: the acting principal, password hashing, signed bearer tokens, API keys.

Passwords are hashed with argon2 (pwdlib); bearer tokens are HS256 JWTs (PyJWT) carrying `sub`
(username), `role`, `dept`, `iat`, `exp` and `jti` (the id of its sign-in session, which the
`auth_sessions` table can revoke); API keys are random secrets stored as SHA-256.
Every failure to accept a credential raises `router.errors.Unauthorized`, never anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from router.errors import Unauthorized
from router.orm import utcnow
from router.workorders.workflow import Role

__all__ = [
    "API_KEY_PREFIX_LENGTH",
    "DEFAULT_TOKEN_TTL_MINUTES",
    "INVALID_TOKEN",
    "SYSTEM_ACTOR",
    "Actor",
    "ActorKind",
    "GeneratedApiKey",
    "TokenClaims",
    "api_key_matches",
    "create_access_token",
    "decode_access_token",
    "generate_api_key",
    "hash_api_key",
    "hash_password",
    "new_token_id",
    "verify_password",
]

ALGORITHM = "HS256"
DEFAULT_TOKEN_TTL_MINUTES = 480  # one working shift; the pages sign in again after it
API_KEY_PREFIX_LENGTH = 8
# Longer inputs are refused before hashing: argon2 over megabytes is a cheap denial of service.
MAX_PASSWORD_LENGTH = 1024
INVALID_TOKEN = "登录凭证无效或已过期，请重新登录"

ActorKind = Literal["user", "api_key", "system"]


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who is acting: a signed-in user, a department system (API key), or the service itself."""

    username: str
    role: str
    department_code: str | None = None
    kind: ActorKind = "user"
    display_name: str = ""
    remote_addr: str | None = field(default=None, compare=False)


SYSTEM_ACTOR = Actor(username="system", role=Role.SYSTEM, kind="system", display_name="系统")


# --- passwords ----------------------------------------------------------------------------


@cache
def _password_hash() -> PasswordHash:
    return PasswordHash((Argon2Hasher(),))


@cache
def _dummy_hash() -> str:
    # Verified against when the username is unknown, so that both failures take the same time.
    return _password_hash().hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _password_hash().hash(password)


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """(matches, new hash if the stored one uses outdated parameters).

    With `password_hash=None` (unknown user) a dummy hash is checked and False returned.
    """
    if len(password) > MAX_PASSWORD_LENGTH:
        return False, None
    if password_hash is None:
        _password_hash().verify(password, _dummy_hash())
        return False, None
    try:
        return _password_hash().verify_and_update(password, password_hash)
    except Exception:  # an unreadable stored hash is a failed login, not a 500
        return False, None


# --- bearer tokens ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TokenClaims:
    username: str
    role: str
    department_code: str | None
    issued_at: datetime
    expires_at: datetime
    token_id: str


def new_token_id() -> str:
    """A token's `jti`: 32 hex digits, the key of its row in `auth_sessions`."""
    return secrets.token_hex(16)


def _signing_key(secret_key: str) -> bytes:
    # Derived rather than used directly: a key only for tokens (the secret may sign other things
    # later), and always 32 bytes, which HS256 needs and short configured secrets are not.
    return hmac.new(secret_key.encode(), b"hotline-router/access-token/v1", hashlib.sha256).digest()


def create_access_token(
    *,
    username: str,
    role: str,
    department_code: str | None,
    secret_key: str,
    ttl: timedelta,
    now: datetime | None = None,
    token_id: str | None = None,
) -> str:
    issued_at = now or utcnow()
    claims: dict[str, Any] = {
        "sub": username,
        "role": role,
        "dept": department_code,
        "iat": int(issued_at.timestamp()),
        "exp": int((issued_at + ttl).timestamp()),
        "jti": token_id or new_token_id(),
    }
    return jwt.encode(claims, _signing_key(secret_key), algorithm=ALGORITHM)


def decode_access_token(token: str, *, secret_key: str) -> TokenClaims:
    """The verified claims of a token; `Unauthorized` if it is malformed, forged or expired."""
    try:
        claims = jwt.decode(
            token,
            _signing_key(secret_key),
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp", "iat", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("登录已过期，请重新登录") from None
    except jwt.PyJWTError:
        raise Unauthorized(INVALID_TOKEN) from None
    username, role, dept = claims.get("sub"), claims.get("role"), claims.get("dept")
    if not isinstance(username, str) or not username or not isinstance(role, str):
        raise Unauthorized(INVALID_TOKEN)
    token_id = claims.get("jti")
    if not isinstance(token_id, str) or not 1 <= len(token_id) <= 32:
        raise Unauthorized(INVALID_TOKEN)
    if dept is not None and not isinstance(dept, str):
        raise Unauthorized(INVALID_TOKEN)
    try:
        issued_at = datetime.fromtimestamp(claims["iat"], tz=UTC)
        expires_at = datetime.fromtimestamp(claims["exp"], tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Unauthorized(INVALID_TOKEN) from None
    return TokenClaims(
        username=username,
        role=role,
        department_code=dept,
        issued_at=issued_at,
        expires_at=expires_at,
        token_id=token_id,
    )


# --- API keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratedApiKey:
    secret: str  # shown once, never stored
    prefix: str
    key_hash: str


def hash_api_key(secret: str) -> str:
    # A plain SHA-256 is enough: the secret is 256 random bits, not a guessable password.
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_api_key() -> GeneratedApiKey:
    secret = "hk_" + secrets.token_urlsafe(32)
    return GeneratedApiKey(
        secret=secret, prefix=secret[:API_KEY_PREFIX_LENGTH], key_hash=hash_api_key(secret)
    )


def api_key_matches(secret: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(secret), key_hash)
