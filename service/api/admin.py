"""Administration: user accounts and department API keys (admin), the audit log (supervisor,
admin). Every change is audited with the acting admin."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from router.workorders.workflow import Role
from service.api.deps import DbSession, Offset
from service.api.security import AdminActor, require_roles
from service.auth import audit
from service.auth import service as auth_service
from service.auth.models import ApiKey, AuditEntry, User
from service.auth.security import Actor

router = APIRouter(prefix="/api/v1", tags=["admin"])

AuditReader = Annotated[Actor, Depends(require_roles(Role.SUPERVISOR, Role.ADMIN))]
Limit = Annotated[int, Query(ge=1, le=500)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not found"}}


class UserCreate(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=8, max_length=128, repr=False)
    role: Role
    department_code: str | None = Field(default=None, max_length=32)
    display_name: str = Field(default="", max_length=128)


class UserUpdate(BaseModel):
    display_name: str | None = Field(default=None, max_length=128)
    password: str | None = Field(default=None, min_length=8, max_length=128, repr=False)
    role: Role | None = None
    department_code: str | None = Field(default=None, max_length=32)
    active: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    display_name: str
    role: str
    department_code: str | None
    active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserList(BaseModel):
    items: list[UserRead]
    total: int


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=64)


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    department_code: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The secret; shown this once, only its hash is stored")


class ApiKeyList(BaseModel):
    items: list[ApiKeyRead]


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target_type: str
    target_id: str | None
    detail: dict[str, Any]
    remote_addr: str | None


class AuditEntryList(BaseModel):
    items: list[AuditEntryRead]
    total: int


def _user(user: User) -> UserRead:
    return UserRead.model_validate(user)


def _key(key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead.model_validate(key)


# --- users --------------------------------------------------------------------------------


@router.get("/users", response_model=UserList)
def list_users(
    actor: AdminActor,
    db_session: DbSession,
    role: Role | None = None,
    department_code: str | None = None,
    active: bool | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> UserList:
    users, total = auth_service.list_users(
        db_session=db_session,
        role=role,
        department_code=department_code,
        active=active,
        limit=limit,
        offset=offset,
    )
    return UserList(items=[_user(user) for user in users], total=total)


@router.post("/users", status_code=201, response_model=UserRead)
def create_user(actor: AdminActor, db_session: DbSession, body: UserCreate) -> UserRead:
    """400 for an unknown department or a role/department mismatch, 409 for a taken username."""
    user = auth_service.create_user(
        db_session=db_session,
        actor=actor,
        username=body.username,
        password=body.password,
        role=body.role.value,
        department_code=body.department_code,
        display_name=body.display_name,
    )
    return _user(user)


@router.get("/users/{user_id}", response_model=UserRead, responses=NOT_FOUND)
def get_user(user_id: int, actor: AdminActor, db_session: DbSession) -> UserRead:
    return _user(auth_service.get_user_or_raise(db_session=db_session, user_id=user_id))


@router.patch("/users/{user_id}", response_model=UserRead, responses=NOT_FOUND)
def update_user(
    user_id: int, actor: AdminActor, db_session: DbSession, body: UserUpdate
) -> UserRead:
    """Change name, password, role/department or `active` (deactivating ends its sessions)."""
    user = auth_service.get_user_or_raise(db_session=db_session, user_id=user_id)
    changes = auth_service.UserChanges(
        display_name=body.display_name,
        password=body.password,
        role=None if body.role is None else body.role.value,
        department_code=body.department_code,
        active=body.active,
    )
    return _user(
        auth_service.update_user(db_session=db_session, actor=actor, user=user, changes=changes)
    )


# --- API keys -----------------------------------------------------------------------------


@router.get("/api-keys", response_model=ApiKeyList)
def list_api_keys(
    actor: AdminActor,
    db_session: DbSession,
    department_code: str | None = None,
    include_revoked: bool = False,
) -> ApiKeyList:
    keys = auth_service.list_api_keys(
        db_session=db_session, department_code=department_code, include_revoked=include_revoked
    )
    return ApiKeyList(items=[_key(key) for key in keys])


@router.post(
    "/departments/{code}/api-keys",
    status_code=201,
    response_model=ApiKeyCreated,
    responses=NOT_FOUND,
)
def create_api_key(
    code: str, actor: AdminActor, db_session: DbSession, body: ApiKeyCreate
) -> ApiKeyCreated:
    """A key for the department's system, sent as `X-API-Key`; the secret is returned only here."""
    created = auth_service.create_api_key(
        db_session=db_session, actor=actor, department_code=code, name=body.name
    )
    return ApiKeyCreated(**_key(created.key).model_dump(), key=created.secret)


@router.delete("/api-keys/{api_key_id}", status_code=204, responses=NOT_FOUND)
def revoke_api_key(api_key_id: int, actor: AdminActor, db_session: DbSession) -> Response:
    """Revoke a key; it is refused from the next request on. Revoking twice is harmless."""
    key = auth_service.get_api_key_or_raise(db_session=db_session, api_key_id=api_key_id)
    auth_service.revoke_api_key(db_session=db_session, actor=actor, key=key)
    return Response(status_code=204)


# --- audit log ----------------------------------------------------------------------------


@router.get("/audit", response_model=AuditEntryList)
def search_audit(
    reader: AuditReader,
    db_session: DbSession,
    actor: str | None = None,
    action: Annotated[
        str | None, Query(description='Exact action, or a family ending in "." (`user.`)')
    ] = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: Annotated[AwareDatetime | None, Query(description="Inclusive, with offset")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Exclusive, with offset")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> AuditEntryList:
    """Audit entries, newest first."""
    entries, total = audit.search(
        db_session=db_session,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
        limit=limit,
        offset=offset,
    )
    return AuditEntryList(items=[_entry(entry) for entry in entries], total=total)


def _entry(entry: AuditEntry) -> AuditEntryRead:
    return AuditEntryRead.model_validate(entry)
