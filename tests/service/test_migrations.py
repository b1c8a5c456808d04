from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from router.orm import Base
from service import migrate
from service.db import create_db_engine, import_models

CORE_TABLES = {
    "appeals",
    "work_orders",
    "work_order_events",
    "departments",
    "categories",
    "model_versions",
    "outbox_messages",
}


def test_migrations_create_the_core_tables(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        assert set(inspect(engine).get_table_names()) >= CORE_TABLES
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_migrations_match_the_models(database_url: str) -> None:
    import_models()
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    migrate.downgrade(database_url, "base")
    engine = create_db_engine(database_url)
    try:
        assert not CORE_TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(database_url)
        assert set(inspect(engine).get_table_names()) >= CORE_TABLES
    finally:
        engine.dispose()
