"""The next-best suggestion after a return skips the departments that returned the order, also
for suggestions stored before alternatives carried their department."""

from __future__ import annotations

from sqlalchemy import select

from router.catalogue.models import Category
from router.workorders.service import next_best_alternative, responsible_department
from service import runtime


def test_legacy_alternatives_are_resolved_against_the_catalogue(seeded_env: str) -> None:
    with runtime.get_database().session() as db_session:
        leaves = db_session.execute(
            select(Category.code, Category.lead_department_code)
            .where(Category.level == 3, Category.lead_department_code.is_not(None))
            .order_by(Category.code)
        ).all()
        first_code, first_department = leaves[0]
        second_code, second_department = next(
            (code, dept) for code, dept in leaves if dept != first_department
        )
        assert responsible_department(db_session=db_session, category_code=first_code) == (
            first_department
        )
        # Stored before alternatives named their department: no department_code.
        suggestion = {
            "alternatives": [
                {"category_code": first_code, "confidence": 0.5},
                {"category_code": second_code, "confidence": 0.3},
            ]
        }
        assert next_best_alternative(
            db_session=db_session, suggestion=suggestion, excluded_departments=set()
        ) == {"category_code": first_code, "confidence": 0.5, "department_code": first_department}
        assert next_best_alternative(
            db_session=db_session,
            suggestion=suggestion,
            excluded_departments={first_department},
        ) == {"category_code": second_code, "confidence": 0.3, "department_code": second_department}
        assert (
            next_best_alternative(
                db_session=db_session,
                suggestion=suggestion,
                excluded_departments={first_department, second_department},
            )
            is None
        )
