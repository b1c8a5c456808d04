from __future__ import annotations

from sqlalchemy import func, select

from router.catalogue import default_catalogue
from router.catalogue.models import Category, Department
from router.catalogue.sync import sync_catalogue
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


def test_sync_carries_inner_node_leads_and_new_bodies_and_updates_changed_leads(
    database_url: str,
) -> None:
    from dataclasses import replace

    from router.catalogue import Catalogue

    catalogue = default_catalogue()
    database = Database(database_url)
    try:
        with database.session() as db_session:
            sync_catalogue(db_session=db_session, catalogue=catalogue)
            level1 = db_session.get_one(Category, "01")
            signals = db_session.get_one(Category, "011214")
            lighting = db_session.get_one(Department, "street_lighting")
            assert level1.lead_department_code == catalogue.responsible_department("01")
            assert level1.lead_department_code is not None
            assert signals.lead_department_code == "traffic_police"
            assert lighting.parent_code == "urban_mgmt"
        # A lead corrected in the catalogue (as telecom -> traffic police was) reaches the table.
        moved = Catalogue(
            [
                replace(c, lead_department="telecom") if c.code == "011214" else c
                for c in catalogue.categories.values()
            ],
            catalogue.departments.values(),
        )
        with database.session() as db_session:
            report = sync_catalogue(db_session=db_session, catalogue=moved)
            assert report.categories_updated == 1
            assert db_session.get_one(Category, "011214").lead_department_code == "telecom"
    finally:
        database.dispose()
