"""Read-only reference data for the pages: the category tree and the department catalogue.

The agent console needs every category to let an agent override a suggestion, and every page
shows department names rather than codes. Both lists are small (under a thousand rows).
"""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from router.catalogue.models import Category, Department
from service.api.deps import DbSession
from service.api.security import CurrentActor

router = APIRouter(prefix="/api/v1/reference", tags=["reference"])


class CategoryRead(BaseModel):
    code: str
    name: str
    level: int
    parent_code: str | None
    path: str
    lead_department_code: str | None
    deadline_value: int
    deadline_unit: str
    priority: str


class CategoryList(BaseModel):
    items: list[CategoryRead]


class DepartmentRead(BaseModel):
    code: str
    name: str
    kind: str
    parent_code: str | None


class DepartmentList(BaseModel):
    items: list[DepartmentRead]


@router.get("/categories", response_model=CategoryList)
def list_categories(db_session: DbSession, actor: CurrentActor) -> CategoryList:
    """Every active category of the three-level taxonomy, ordered by code (parents first)."""
    rows = db_session.scalars(
        select(Category).where(Category.active.is_(True)).order_by(Category.code)
    )
    return CategoryList(
        items=[
            CategoryRead(
                code=c.code,
                name=c.name,
                level=c.level,
                parent_code=c.parent_code,
                path=c.path,
                lead_department_code=c.lead_department_code,
                deadline_value=c.deadline_value,
                deadline_unit=c.deadline_unit,
                priority=c.priority,
            )
            for c in rows
        ]
    )


@router.get("/departments", response_model=DepartmentList)
def list_departments(db_session: DbSession, actor: CurrentActor) -> DepartmentList:
    """Every active department, ordered by code."""
    rows = db_session.scalars(
        select(Department).where(Department.active.is_(True)).order_by(Department.code)
    )
    return DepartmentList(
        items=[
            DepartmentRead(code=d.code, name=d.name, kind=d.kind, parent_code=d.parent_code)
            for d in rows
        ]
    )
