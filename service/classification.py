"""The classifier as the service uses it: the active model, loaded once per process, and routing.

The active model lives in `HOTLINE_MODEL_DIR`. The process reloads it when its `metadata.json`
changes (a supervisor activated another version), so API workers never serve a stale model for
long and never load it per request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from classifier import HotlineClassifier, load_metadata, load_model
from classifier.errors import ArtifactError
from router.catalogue import Catalogue, default_catalogue
from router.routing import RouteDecision, RoutingPolicy, route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    model: HotlineClassifier
    version: str
    metadata: dict[str, Any]
    stamp: float


class ModelRuntime:
    """Holds the active model of one process; thread-safe lazy (re)loading."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None

    def _stamp(self) -> float:
        try:
            return (self.model_dir / "metadata.json").stat().st_mtime
        except FileNotFoundError:
            raise ArtifactError(f"no model in {self.model_dir}") from None

    def get(self) -> LoadedModel:
        stamp = self._stamp()
        loaded = self._loaded
        if loaded is not None and loaded.stamp == stamp:
            return loaded
        with self._lock:
            if self._loaded is None or self._loaded.stamp != stamp:
                metadata = load_metadata(self.model_dir)
                model = load_model(self.model_dir)
                version = str(metadata.get("version") or metadata.get("fingerprint") or stamp)
                self._loaded = LoadedModel(model, version, metadata, stamp)
                log.info("loaded model %s from %s", version, self.model_dir)
            return self._loaded


_runtimes: dict[Path, ModelRuntime] = {}


def runtime_for(model_dir: Path) -> ModelRuntime:
    key = model_dir.resolve()
    if key not in _runtimes:
        _runtimes[key] = ModelRuntime(key)
    return _runtimes[key]


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
    loaded = runtime_for(model_dir).get()
    full_text = f"{title}\n{text}" if title else text
    suggestion = loaded.model.suggest(full_text, k=k)
    decision = route(
        catalogue=catalogue or default_catalogue(),
        suggestion=suggestion,
        text=full_text,
        address=address,
        policy=policy,
    )
    return decision, loaded.version
