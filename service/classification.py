"""The classifier as the service uses it: the active model, loaded once per process, and routing.

The active model is the registry's active version (`model_versions.status = 'active'`, see
`training.registry`); with no active version it is the artifact in `HOTLINE_MODEL_DIR`. A process
re-reads which version is active at most every `HOTLINE_MODEL_REFRESH_SECONDS` (so a version
activated by a worker or another API process is served within seconds, without a query per
request) and reloads when the artifact's `metadata.json` changes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from classifier import HotlineClassifier, load_metadata, load_model
from classifier.errors import ArtifactError
from router.catalogue import Catalogue, default_catalogue
from router.routing import DEPARTMENT_BEAM, RouteDecision, RoutingPolicy, route
from service.config import get_settings
from service.db import Database
from service.runtime import get_database
from training.models import ModelVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model: HotlineClassifier
    version: str
    metadata: dict[str, Any]
    stamp: float
    directory: Path = Path()


@dataclass(frozen=True)
class _Active:
    """What the registry said was active, and when this process asked."""

    database: Database | None
    checked_at: float
    version: str | None
    path: Path | None


def _default_database() -> Database:
    return get_database()


def _default_refresh_seconds() -> float:
    return get_settings().model_refresh_seconds


class ModelRuntime:
    """Holds the active model of one process; thread-safe lazy (re)loading."""

    def __init__(
        self,
        model_dir: Path,
        *,
        database: Callable[[], Database | None] = _default_database,
        refresh_seconds: Callable[[], float] = _default_refresh_seconds,
    ) -> None:
        self.model_dir = model_dir
        self._database = database
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._check_lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._active: _Active | None = None

    def _registry_active(self) -> tuple[str | None, Path | None]:
        """(version, directory) of the registry's active version, or (None, None)."""
        database = self._database()
        now = time.monotonic()
        known = self._active
        if (
            known is not None
            and known.database is database
            and now - known.checked_at < self._refresh_seconds()
        ):
            return known.version, known.path
        # Single flight: one thread asks the database; the others keep serving what is known
        # (a request that already holds a pooled connection must never wait for a second one).
        stale_usable = known is not None and known.database is database
        if not self._check_lock.acquire(blocking=not stale_usable):
            assert known is not None
            return known.version, known.path
        try:
            return self._ask_registry(database, known)
        finally:
            self._check_lock.release()

    def _ask_registry(
        self, database: Database | None, known: _Active | None
    ) -> tuple[str | None, Path | None]:
        now = time.monotonic()
        latest = self._active
        if latest is not None and latest is not known and latest.database is database:
            return latest.version, latest.path  # another thread asked while this one waited
        version: str | None = None
        path: Path | None = None
        if database is not None:
            try:
                with database.engine.connect() as connection:
                    row = connection.execute(
                        select(ModelVersion.version, ModelVersion.path)
                        .where(ModelVersion.status == "active")
                        .order_by(ModelVersion.activated_at.desc(), ModelVersion.id.desc())
                        .limit(1)
                    ).first()
            except SQLAlchemyError as exc:  # the database is down or not migrated yet
                log.warning("model registry unreadable (%s); keeping the current model", exc)
                if known is not None:
                    return known.version, known.path
                row = None
            if row is not None:
                version, path = row.version, Path(row.path)
        self._active = _Active(database, now, version, path)
        return version, path

    def refresh(self) -> None:
        """Ask the registry again on the next `get()` (after an activation in this process)."""
        self._active = None

    def current_dir(self) -> Path:
        """The directory of the model this process should serve now."""
        _version, path = self._registry_active()
        return path if path is not None else self.model_dir

    def get(self) -> LoadedModel:
        registry_version, path = self._registry_active()
        directory = path if path is not None else self.model_dir
        try:
            stamp = (directory / "metadata.json").stat().st_mtime
        except FileNotFoundError:
            raise ArtifactError(f"no model in {directory}") from None
        loaded = self._loaded
        if loaded is not None and loaded.stamp == stamp and loaded.directory == directory:
            return loaded
        with self._lock:
            loaded = self._loaded
            if loaded is None or loaded.stamp != stamp or loaded.directory != directory:
                metadata = load_metadata(directory)
                model = load_model(directory)
                version = str(
                    registry_version
                    or metadata.get("version")
                    or metadata.get("fingerprint")
                    or stamp
                )
                loaded = self._loaded = LoadedModel(model, version, metadata, stamp, directory)
                log.info("loaded model %s from %s", version, directory)
            return loaded


_runtimes: dict[Path, ModelRuntime] = {}


def runtime_for(model_dir: Path) -> ModelRuntime:
    key = model_dir.resolve()
    if key not in _runtimes:
        _runtimes[key] = ModelRuntime(key)
    return _runtimes[key]


def active_model_dir(model_dir: Path) -> Path:
    """The directory this process serves: the registry's active version, else `model_dir`."""
    return runtime_for(model_dir).current_dir()


def suggest(
    *,
    model_dir: Path,
    text: str,
    title: str = "",
    address: str | None = None,
    k: int = 5,
    policy: RoutingPolicy | None = None,
    catalogue: Catalogue | None = None,
) -> tuple[RouteDecision, str]:
    """Classify an appeal and decide its route; returns (decision, model version)."""
    decisions, version = suggest_many(
        model_dir=model_dir,
        appeals=[(text, title, address)],
        k=k,
        policy=policy,
        catalogue=catalogue,
    )
    return decisions[0], version


def suggest_many(
    *,
    model_dir: Path,
    appeals: Sequence[tuple[str, str, str | None]],
    k: int = 5,
    policy: RoutingPolicy | None = None,
    catalogue: Catalogue | None = None,
) -> tuple[list[RouteDecision], str]:
    """`suggest` for several (text, title, address) in one batch through the model."""
    loaded = runtime_for(model_dir).get()
    full_texts = [f"{title}\n{text}" if title else text for text, title, _ in appeals]
    # The department confidence sums over a fixed beam, so that the auto-dispatch decision does
    # not depend on how many alternatives a caller asked to see.
    suggestions = loaded.model.suggest_batch(full_texts, k=max(k, DEPARTMENT_BEAM))
    catalogue = catalogue or default_catalogue()
    decisions = []
    for suggestion, full_text, (_, _, address) in zip(
        suggestions, full_texts, appeals, strict=True
    ):
        decision = route(
            catalogue=catalogue,
            suggestion=suggestion,
            text=full_text,
            address=address,
            policy=policy,
        )
        decisions.append(replace(decision, alternatives=decision.alternatives[:k]))
    return decisions, loaded.version
