"""Keep the `departments` and `categories` tables in step with the reference catalogue.

The catalogue files are the source of truth; `sync_catalogue` inserts new rows, updates changed
ones and deactivates rows that disappeared (work orders keep pointing at them, so nothing is
deleted). It is idempotent and only flushes: the caller owns the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.catalogue import Catalogue
from router.catalogue.models import Category, Department


@dataclass(frozen=True)
class SyncReport:
    departments_added: int
    departments_updated: int
    categories_added: int
    categories_updated: int
    deactivated: int


def _department_order(catalogue: Catalogue) -> list[str]:
    """Codes with every parent before its children, so foreign keys hold at each flush."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(code: str) -> None:
        if code in seen:
            return
        seen.add(code)
        parent = catalogue.departments[code].parent_code
        if parent and parent in catalogue.departments:
            visit(parent)
        ordered.append(code)

    for code in catalogue.departments:
        visit(code)
    return ordered


def _apply(row: object, values: dict[str, object]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed


def sync_catalogue(*, db_session: Session, catalogue: Catalogue) -> SyncReport:
    departments: dict[str, Department] = {
        row.code: row for row in db_session.scalars(select(Department))
    }
    added = updated = 0
    for code in _department_order(catalogue):
        source = catalogue.departments[code]
        values: dict[str, object] = {
            "name": source.name,
            "kind": source.kind,
            "parent_code": source.parent_code,
            "phone": source.phone,
            "delivery": source.delivery,
            "webhook_url": source.webhook_url,
            "active": True,
        }
        row = departments.get(code)
        if row is None:
            db_session.add(Department(code=code, **values))
            added += 1
        elif _apply(row, values):
            updated += 1
    db_session.flush()

    categories: dict[str, Category] = {
        row.code: row for row in db_session.scalars(select(Category))
    }
    cat_added = cat_updated = 0
    for node in sorted(catalogue.categories.values(), key=lambda c: (c.level, c.code)):
        values = {
            "name": node.name,
            "level": node.level,
            "parent_code": node.parent_code,
            "path": node.path_text,
            "lead_department_code": node.lead_department,
            "assisting_department_codes": list(node.assisting_departments),
            "handling_scope": node.handling_scope,
            "appeal_types": list(node.appeal_types),
            "deadline_value": node.deadline_value,
            "deadline_unit": node.deadline_unit,
            "priority": node.priority,
            "urgent_keywords": list(node.urgent_keywords),
            "active": True,
        }
        category = categories.get(node.code)
        if category is None:
            db_session.add(Category(code=node.code, **values))
            cat_added += 1
        elif _apply(category, values):
            cat_updated += 1
    db_session.flush()

    deactivated = 0
    for code, row in departments.items():
        if code not in catalogue.departments and row.active:
            row.active = False
            deactivated += 1
    for code, stale in categories.items():
        if code not in catalogue.categories and stale.active:
            stale.active = False
            deactivated += 1
    db_session.flush()
    return SyncReport(added, updated, cat_added, cat_updated, deactivated)
