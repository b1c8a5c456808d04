"""Registry rules: versions on disk and in the database, promotion only when not worse on the
same held-out data, rejection, activation refusals, rollback, and the service runtime following
activations made elsewhere. Models are tiny (a few hundred rows) and really trained."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from router.errors import Conflict, NotFound
from service.db import Database
from training import registry
from training.history import LabelledRow, read_base_rows, write_split
from training.models import ModelVersion


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Clean, very noisy (90 % wrong labels) and held-out demo corpora, all seeded."""
    from fixtures.generator import write_corpus

    root = tmp_path_factory.mktemp("registry-corpora")
    files = {
        "clean": root / "clean.csv",
        "noisy": root / "noisy.csv",
        "holdout_source": root / "holdout-source.csv",
    }
    write_corpus(files["clean"], 500, seed=21, progress=False)
    write_corpus(files["noisy"], 500, seed=22, progress=False, noise=0.9)
    write_corpus(files["holdout_source"], 240, seed=23, progress=False)
    rows = _rows(files["holdout_source"])
    split = write_split(rows, root / "holdout", holdout_share=0.49)
    files["holdout"] = split.holdout
    return files


def _rows(path: Path) -> list[LabelledRow]:
    return read_base_rows(
        [path],
        text_column="text",
        label_column="category_code",
        department_column="department_code",
    )


def _train(source: Path, out: Path) -> Path:
    """Train on `source` in the registry's file format (what `retrain` writes)."""
    from training.workflow import train_model

    split = write_split(_rows(source), out.parent / f"{out.name}-data", holdout_share=0.01)
    train_model(
        [str(split.train)],
        text_column="text",
        label_column="label",
        department_column="department_code",
        out=out,
        seed=0,
    )
    return out


@pytest.fixture(scope="module")
def trained(corpora: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("registry-models")
    return {
        "clean": _train(corpora["clean"], root / "clean"),
        "noisy": _train(corpora["noisy"], root / "noisy"),
    }


def _register(
    database: Database, artifact: Path, versions: Path, source: str = "test"
) -> ModelVersion:
    with database.session() as db_session:
        return registry.register(
            db_session=db_session,
            artifact_dir=artifact,
            versions_dir=versions,
            source=source,
            move=False,
        )


def _status(database: Database) -> dict[str, str]:
    with database.session() as db_session:
        return {r.version: r.status for r in registry.list_versions(db_session=db_session)}


def _activate(database: Database, version: str) -> None:
    with database.session() as db_session:
        registry.activate(db_session=db_session, version=version)


def _promote(
    database: Database, version: str, holdout: Path, tolerance: float = 0.0
) -> registry.Decision:
    return registry.promote_if_not_worse(
        session_scope=database.session, version=version, holdout=holdout, tolerance=tolerance
    )


def test_register_copies_the_artifact_into_its_version_directory(
    database: Database, trained: dict[str, Path], tmp_path: Path
) -> None:
    row = _register(database, trained["clean"], tmp_path / "versions", source="manual")
    directory = tmp_path / "versions" / row.version
    assert Path(row.path) == directory.resolve()
    assert (directory / "model.joblib").is_file()
    metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    assert metadata["registry"]["version"] == row.version
    assert metadata["registry"]["source"] == "manual"
    assert row.status == "candidate"
    assert row.data_fingerprint == metadata["dataset_fingerprint"]
    assert 0 <= row.metrics["accuracy"] <= 1
    assert [p["threshold"] for p in row.coverage_curve][:2] == [0.0, 0.3]


def test_first_version_is_promoted_when_nothing_is_active(
    database: Database, trained: dict[str, Path], corpora: dict[str, Path], tmp_path: Path
) -> None:
    row = _register(database, trained["noisy"], tmp_path / "versions")
    decision = _promote(database, row.version, corpora["holdout"])
    assert decision.promoted
    assert decision.evaluation["active_version"] is None
    assert _status(database) == {row.version: "active"}


def test_worse_model_is_rejected_and_better_one_promoted_on_the_same_holdout(
    database: Database, trained: dict[str, Path], corpora: dict[str, Path], tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    clean = _register(database, trained["clean"], versions)
    _activate(database, clean.version)

    noisy = _register(database, trained["noisy"], versions)
    decision = _promote(database, noisy.version, corpora["holdout"])
    assert not decision.promoted
    assert _status(database) == {clean.version: "active", noisy.version: "rejected"}
    with database.session() as db_session:
        stored = registry.get_version_or_raise(db_session=db_session, version=noisy.version)
        evaluation = stored.evaluation
    assert evaluation["decision"] == "rejected"
    assert evaluation["active_version"] == clean.version
    checks = {c["metric"]: c for c in evaluation["comparison"]["checks"]}
    # Both were scored on the same file, and the noisy model really scored lower.
    assert checks["accuracy"]["candidate"] < checks["accuracy"]["active"]
    assert evaluation["candidate"]["rows"] == evaluation["active"]["rows"]


def test_better_model_is_promoted_over_a_worse_active_one(
    database: Database, trained: dict[str, Path], corpora: dict[str, Path], tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    noisy = _register(database, trained["noisy"], versions)
    _activate(database, noisy.version)
    clean = _register(database, trained["clean"], versions)
    decision = _promote(database, clean.version, corpora["holdout"])
    assert decision.promoted, decision.message
    assert decision.evaluation["decision"] == "promoted"
    assert _status(database) == {noisy.version: "retired", clean.version: "active"}
    with database.session() as db_session:
        active = registry.get_active(db_session=db_session)
        assert active is not None
        assert active.previous_version == noisy.version


def test_tolerance_lets_a_slightly_worse_model_through(
    database: Database, trained: dict[str, Path], corpora: dict[str, Path], tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    clean = _register(database, trained["clean"], versions)
    _activate(database, clean.version)
    noisy = _register(database, trained["noisy"], versions)
    decision = _promote(database, noisy.version, corpora["holdout"], tolerance=1.0)
    assert decision.promoted
    assert decision.evaluation["tolerance"] == 1.0


def test_rejected_or_broken_versions_cannot_be_activated(
    database: Database, trained: dict[str, Path], tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    rejected = _register(database, trained["noisy"], versions)
    broken = _register(database, trained["clean"], versions)
    with database.session() as db_session:
        registry.get_version_or_raise(
            db_session=db_session, version=rejected.version
        ).status = "rejected"
    (Path(broken.path) / "model.joblib").write_bytes(b"not a model")
    with database.session() as db_session:
        with pytest.raises(Conflict, match="拒绝"):
            registry.activate(db_session=db_session, version=rejected.version)
        with pytest.raises(Conflict, match="不可用"):
            registry.activate(db_session=db_session, version=broken.version)
        with pytest.raises(NotFound):
            registry.activate(db_session=db_session, version="no-such-version")
    shutil.rmtree(broken.path)
    with database.session() as db_session, pytest.raises(Conflict, match="不可用"):
        registry.activate(db_session=db_session, version=broken.version)
    assert set(_status(database).values()) == {"rejected", "candidate"}


def test_rollback_walks_back_through_the_activation_history(
    database: Database, trained: dict[str, Path], tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    first = _register(database, trained["clean"], versions)
    second = _register(database, trained["noisy"], versions)
    third = _register(database, trained["clean"], versions)
    with database.session() as db_session:
        with pytest.raises(Conflict):
            registry.rollback(db_session=db_session)  # nothing active yet
        for row in (first, second, third):
            registry.activate(db_session=db_session, version=row.version)
    with database.session() as db_session:
        assert registry.rollback(db_session=db_session).version == second.version
    assert _status(database) == {
        first.version: "retired",
        second.version: "active",
        third.version: "retired",
    }
    with database.session() as db_session:
        assert registry.rollback(db_session=db_session).version == first.version
    with database.session() as db_session, pytest.raises(Conflict, match="无法回滚"):
        registry.rollback(db_session=db_session)
    assert _status(database)[first.version] == "active"


def test_model_dir_is_adopted_as_the_first_active_version_once(
    database: Database, trained: dict[str, Path], tmp_path: Path
) -> None:
    versions = tmp_path / "versions"
    with database.session() as db_session:
        row = registry.adopt_model_dir(
            db_session=db_session, model_dir=trained["clean"], versions_dir=versions
        )
        assert row is not None
        version = row.version
    with database.session() as db_session:
        again = registry.adopt_model_dir(
            db_session=db_session, model_dir=trained["clean"], versions_dir=versions
        )
    assert again is None
    assert _status(database) == {version: "active"}
    assert (trained["clean"] / "model.joblib").is_file()  # copied, not moved


def test_a_versions_dir_inside_the_model_dir_copies_only_the_artifact(
    database: Database, trained: dict[str, Path], tmp_path: Path
) -> None:
    """`make run` keeps versions under the model directory's parent; a versions directory
    inside the adopted directory must not be copied into itself."""
    import shutil

    model_dir = tmp_path / "models"
    shutil.copytree(trained["clean"], model_dir)
    with database.session() as db_session:
        row = registry.adopt_model_dir(
            db_session=db_session, model_dir=model_dir, versions_dir=model_dir / "versions"
        )
        assert row is not None
    copied = model_dir / "versions" / row.version
    assert sorted(p.name for p in copied.iterdir()) == sorted(
        p.name for p in trained["clean"].iterdir() if p.is_file()
    )


def test_runtime_serves_the_version_activated_by_another_process(
    database_url: str, trained: dict[str, Path], tmp_path: Path
) -> None:
    """The API's runtime follows activations written to the database by someone else."""
    from service.classification import ModelRuntime

    writer = Database(database_url)  # stands for the worker or the CLI
    reader = Database(database_url)
    try:
        runtime = ModelRuntime(
            trained["noisy"], database=lambda: reader, refresh_seconds=lambda: 0.0
        )
        fallback = runtime.get()
        assert fallback.directory == trained["noisy"]  # no registry row: HOTLINE_MODEL_DIR

        versions = tmp_path / "versions"
        clean = _register(writer, trained["clean"], versions)
        noisy = _register(writer, trained["noisy"], versions)
        with writer.session() as db_session:
            registry.activate(db_session=db_session, version=clean.version)
        served = runtime.get()
        assert served.version == clean.version
        assert runtime.current_dir() == Path(clean.path)
        assert served.directory == Path(clean.path)
        assert runtime.get() is served  # not reloaded per call

        with writer.session() as db_session:
            registry.activate(db_session=db_session, version=noisy.version)
        assert runtime.get().version == noisy.version
        with writer.session() as db_session:
            registry.rollback(db_session=db_session)
        assert runtime.get().version == clean.version
    finally:
        writer.dispose()
        reader.dispose()


def test_runtime_asks_the_registry_only_after_the_refresh_interval(
    database_url: str, trained: dict[str, Path], tmp_path: Path
) -> None:
    from service.classification import ModelRuntime

    db = Database(database_url)
    try:
        runtime = ModelRuntime(trained["noisy"], database=lambda: db, refresh_seconds=lambda: 3600)
        assert runtime.get().directory == trained["noisy"]
        row = _register(db, trained["clean"], tmp_path / "versions")
        with db.session() as db_session:
            registry.activate(db_session=db_session, version=row.version)
        assert runtime.get().directory == trained["noisy"]  # cached answer still fresh
        runtime.refresh()
        assert runtime.get().version == row.version
    finally:
        db.dispose()


# -- the CLI ---------------------------------------------------------------------------------------


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from service.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_errors_are_one_line(app_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in (
        (["models", "activate", "no-such-version"], "不存在"),
        (["models", "rollback"], "无法回滚"),
        (["retrain", "--no-base"], "--no-base needs --from-db"),
        (["retrain", "--data", "/nonexistent/corpus.csv"], "file not found"),
    ):
        code, _out, err = run_cli(argv, capsys)
        assert code == 2, argv
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert expected in err, err


def test_cli_retrain_registers_lists_and_rolls_back(
    app_env: str,
    corpora: dict[str, Path],
    trained: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from service import runtime

    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(trained["noisy"]))
    runtime.reset()
    assert run_cli(["models", "list"], capsys)[1] == "no registered model versions\n"

    code, out, err = run_cli(["retrain", "--data", str(corpora["clean"])], capsys)
    assert code == 0, err
    assert "activated" in out and "不差于" in out  # clean data beats the noisy model in MODEL_DIR

    code, out, _err = run_cli(["models", "list"], capsys)
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("* ") and "active" in lines[0] and "cli" in lines[0]
    assert "retired" in lines[1] and "model_dir" in lines[1]

    code, out, _err = run_cli(["models", "rollback"], capsys)
    assert code == 0 and out.startswith("rolled back; active: ")
    adopted = lines[1].split()[0]
    assert out.strip().endswith(adopted)
    code, out, _err = run_cli(["models", "activate", lines[0].split()[1]], capsys)
    assert code == 0 and out.strip() == f"active: {lines[0].split()[1]}"


def test_cli_registers_a_model_directory(
    app_env: str, trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["models", "register", str(trained["clean"]), "--activate"], capsys)
    assert code == 0, err
    assert out.startswith("registered ") and out.strip().endswith("(active)")
    code, _out, err = run_cli(["models", "register", str(tmp_path)], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1


def test_bootstrap_registers_the_model_dir_once(
    app_env: str, trained: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service import runtime
    from service.bootstrap import register_model_dir
    from service.config import get_settings

    monkeypatch.setenv("HOTLINE_MODEL_DIR", str(trained["clean"]))
    runtime.reset()
    database = runtime.get_database()
    version = register_model_dir(database, get_settings(), source="demo")
    assert version is not None
    assert register_model_dir(database, get_settings(), source="demo") is None
    assert _status(database) == {version: "active"}
    with database.session() as db_session:
        assert (
            registry.get_version_or_raise(db_session=db_session, version=version).source == "demo"
        )
