"""What `hotline run` prepares: reference data, demo accounts and a demo model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from router.catalogue import default_catalogue
from router.catalogue.models import Department
from router.catalogue.sync import SyncReport, sync_catalogue
from service.auth.service import seed_demo_accounts as seed
from service.config import Settings
from service.db import Database

log = logging.getLogger(__name__)

DEMO_SEED = 12345  # = training.default_model.SYNTHETIC_SEED, the seed of the synthetic corpus


def load_reference_data(database: Database) -> SyncReport:
    """Bring the catalogue tables in step with the reference data; the caller reports it."""
    with database.session() as db_session:
        report = sync_catalogue(db_session=db_session, catalogue=default_catalogue())
    log.debug("reference data: %s", report)
    return report


def describe_reference_report(report: SyncReport) -> str:
    return (
        f"reference data: {report.departments_added} departments and "
        f"{report.categories_added} categories added, "
        f"{report.departments_updated + report.categories_updated} updated"
    )


class TrainingProgress:
    """`progress(stage, fraction)` for the demo model's training: one INFO line per stage and
    per tenth of the work, with the seconds since the start, so a first start is not silent."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._started = clock()
        self._last: tuple[str, int] | None = None

    def __call__(self, stage: str, fraction: float) -> None:
        step = (stage, int(fraction * 10))
        if step == self._last:
            return
        self._last = step
        elapsed = self._clock() - self._started
        log.info("training the demo model: %s %d%% (%.0f s)", stage, fraction * 100, elapsed)


def seed_demo_accounts(database: Database, settings: Settings) -> list[str]:
    with database.session() as db_session:
        codes = list(db_session.scalars(select(Department.code).where(Department.active.is_(True))))
        created = seed(
            db_session=db_session,
            password=settings.demo_password.get_secret_value(),
            department_codes=codes,
        )
    if created:
        log.info("seeded %d demo accounts", len(created))
    return created


def ensure_demo_model(settings: Settings) -> bool:
    """Train the default model unless a model is there already: the seeded synthetic corpus of
    `demo_corpus_size` appeals and the shipped real messages (`training.default_model`).

    In development a model of an older artifact format (left by an earlier release) is replaced
    too; elsewhere it is left alone and `/readyz` reports it, since it may be the city's own.
    """
    if (settings.model_dir / "model.joblib").is_file():
        if not _outdated_format(settings.model_dir) or settings.environment != "development":
            return False
        log.warning("the model in %s has an outdated format: retraining", settings.model_dir)
    from training.default_model import train_default_model

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    # the real messages never outnumber the synthetic ones: a small demo corpus (tests, a quick
    # try) stays quick to train; at the default size every real row is used
    log.info(
        "no model in %s: training the demo model on %d synthetic appeals (once; about 2 minutes "
        "at the default size)",
        settings.model_dir,
        settings.demo_corpus_size,
    )
    result = train_default_model(
        settings.model_dir,
        seed=0,
        synthetic_count=settings.demo_corpus_size,
        real_limit=settings.demo_corpus_size // 2,
        progress=TrainingProgress(),
    )
    log.info(
        "demo model trained in %.0f s: %d rows, %d categories, saved in %s",
        result.seconds,
        result.rows,
        result.classes,
        result.model_dir,
    )
    return True


def _outdated_format(model_dir: Path) -> bool:
    from classifier.artifact import FORMAT_VERSION, load_metadata
    from classifier.errors import ClassifierError

    try:
        return load_metadata(model_dir).get("format_version") != FORMAT_VERSION
    except (ClassifierError, OSError, ValueError):
        return True


def register_model_dir(database: Database, settings: Settings, *, source: str) -> str | None:
    """Make the model in `HOTLINE_MODEL_DIR` the registry's first active version (if none is)."""
    from training.registry import adopt_model_dir

    with database.session() as db_session:
        row = adopt_model_dir(
            db_session=db_session,
            model_dir=settings.model_dir,
            versions_dir=settings.model_versions_dir,
            source=source,
        )
        version = None if row is None else row.version
    if version is not None:
        log.info("registered %s as model version %s", settings.model_dir, version)
    return version


def prepare(settings: Settings, database: Database, *, reference_data: bool = True) -> None:
    """Reference data (unless the caller has just loaded it), demo accounts, a model."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    if reference_data:
        log.info(describe_reference_report(load_reference_data(database)))
    if settings.seed_demo:
        seed_demo_accounts(database, settings)
    trained = ensure_demo_model(settings)
    if trained:
        _retire_unloadable_active(database)
    register_model_dir(database, settings, source="demo" if trained else "model_dir")
    if settings.seed_demo:
        seed_knowledge(database, settings)


def seed_knowledge(database: Database, settings: Settings) -> int:
    """The demo's knowledge base: the real official replies (once; later runs add nothing)."""
    from service.knowledge import seed_official_replies

    with database.session() as db_session:
        created = seed_official_replies(db_session=db_session, settings=settings)
    if created:
        log.info("seeded %d knowledge articles from the official replies", created)
    return created


def _retire_unloadable_active(database: Database) -> None:
    """A freshly trained demo model replaces an active version this release cannot load."""
    from training.registry import get_active

    with database.session() as db_session:
        active = get_active(db_session=db_session)
        if active is not None and _outdated_format(Path(active.path)):
            log.warning("model version %s has an outdated format: retired", active.version)
            active.status = "retired"
