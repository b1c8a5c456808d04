from __future__ import annotations

from sqlalchemy import func, select

from router.catalogue import default_catalogue
from router.models import Category, Department
from router.reference import sync_catalogue
from service.db import Database


def test_catalogue_sync_loads_every_row_once_and_is_idempotent(database_url: str) -> None:
    catalogue = default_catalogue()
    database = Database(database_url)
    try:
        with database.session() as db_session:
            first = sync_catalogue(db_session=db_session, catalogue=catalogue)
        with database.session() as db_session:
            second = sync_catalogue(db_session=db_session, catalogue=catalogue)
            departments = db_session.scalar(select(func.count()).select_from(Department))
            categories = db_session.scalar(select(func.count()).select_from(Category))
            leaf = db_session.get_one(Category, catalogue.leaves()[0].code)
        assert first.departments_added == departments == len(catalogue.departments)
        assert first.categories_added == categories == len(catalogue.categories)
        assert (second.departments_added, second.categories_added) == (0, 0)
        assert (second.departments_updated, second.categories_updated) == (0, 0)
        assert leaf.lead_department_code == catalogue.leaves()[0].lead_department
        assert leaf.path == catalogue.leaves()[0].path_text
    finally:
        database.dispose()
