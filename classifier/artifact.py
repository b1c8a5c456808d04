"""Model artifacts: `model.joblib` beside `metadata.json`, and the checks made before loading one.

joblib files run code when loaded, so only trusted directories may be loaded; the checks here
catch accidents (a truncated copy, another library version, a different label set), not attacks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import joblib

from classifier.errors import ArtifactError
from classifier.model import HotlineClassifier

__all__ = [
    "FORMAT_VERSION",
    "METADATA_FILE",
    "MODEL_FILE",
    "library_versions",
    "load_metadata",
    "load_model",
    "save_model",
]

FORMAT_VERSION = 2  # 2: numpy feature space (`features_`) and bitmap node look-ups
MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
# Versions that must match exactly to load a pickle safely; the others are recorded only.
_PINNED = ("scikit-learn", "numpy", "scipy", "joblib")
_RECORDED = ("jieba", "rjieba")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in (*_PINNED, *_RECORDED):
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _git_sha() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and sha else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def save_model(
    model: HotlineClassifier, directory: str | Path, *, metadata_extra: dict[str, Any] | None = None
) -> Path:
    """Write `model.joblib` and `metadata.json` into `directory` (created if needed).

    `metadata_extra` is merged into the metadata (e.g. `metrics`, `label_kind`, `data_files`).
    """
    if not hasattr(model, "nodes_"):
        raise ArtifactError("refusing to save an unfitted model")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    tmp = out / (MODEL_FILE + ".tmp")
    joblib.dump(model, tmp, compress=3)
    tmp.replace(model_path)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "model_sha256": _sha256(model_path),
        "library_versions": library_versions(),
        "segmenter": model.text_pipeline_.backend,
        "git_sha": _git_sha(),
        "data_fingerprint": model.data_fingerprint_,
        "params": {k: v for k, v in model.get_params().items()},
        "depth": int(model.depth_),
        "labels": [str(c) for c in model.classes_],
        "departments": None if model.departments_ is None else [str(d) for d in model.departments_],
        "metrics": {},
    }
    if metadata_extra:
        meta.update(metadata_extra)
    (out / METADATA_FILE).write_text(
        json.dumps(meta, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    return out


def load_metadata(directory: str | Path) -> dict[str, Any]:
    """The parsed `metadata.json` of a model directory (ArtifactError if missing or unreadable)."""
    path = Path(directory)
    if not path.is_dir():
        raise ArtifactError(f"model directory not found: {path}")
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise ArtifactError(f"not a model directory (no {METADATA_FILE}): {path}")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"corrupt {meta_path}: {exc}") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"corrupt {meta_path}: not a JSON object")
    return meta


def load_model(directory: str | Path, *, check_versions: bool = True) -> HotlineClassifier:
    """Load a model saved by `save_model`, refusing corrupt or mismatched artifacts.

    Checks: format version, pinned library versions (scikit-learn, numpy, scipy, joblib),
    the sha256 of `model.joblib`, the class of the object and its label set.
    """
    path = Path(directory)
    meta = load_metadata(path)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"model format {meta.get('format_version')!r} in {path}, expected {FORMAT_VERSION}"
        )
    if check_versions:
        saved = meta.get("library_versions") or {}
        current = library_versions()
        mismatched = [
            f"{name} {saved.get(name)} (installed {current.get(name)})"
            for name in _PINNED
            if saved.get(name) != current.get(name)
        ]
        if mismatched:
            raise ArtifactError(
                f"model in {path} was saved with other library versions: " + ", ".join(mismatched)
            )
    model_path = path / MODEL_FILE
    if not model_path.is_file():
        raise ArtifactError(f"model file missing: {model_path}")
    if _sha256(model_path) != meta.get("model_sha256"):
        raise ArtifactError(f"{model_path} does not match the checksum in {METADATA_FILE}")
    try:
        model = joblib.load(model_path)
    except Exception as exc:  # unpickling can fail in many ways; all mean "corrupt"
        raise ArtifactError(f"cannot load {model_path}: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, HotlineClassifier) or not hasattr(model, "nodes_"):
        raise ArtifactError(f"{model_path} does not hold a fitted HotlineClassifier")
    if [str(c) for c in model.classes_] != meta.get("labels"):
        raise ArtifactError(f"label set of {model_path} differs from {METADATA_FILE}")
    return model
