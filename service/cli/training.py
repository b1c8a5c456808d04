"""Commands for models (`hotline train`, `predict`, `evaluate`) and the registry (`hotline
models list|activate|rollback`, `hotline retrain`).

Expected failures (missing file or column, empty data, a single class, a corrupt model
directory) raise `ClassifierError` subclasses or FileNotFoundError, which `main()` prints as one
line with exit code 2.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from service.cli.app import CliError, app

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from training.models import ModelVersion

DataOption = Annotated[
    list[Path], typer.Option("--data", help="CSV or JSONL file (repeatable).", show_default=False)
]
TextColumn = Annotated[str, typer.Option("--text-column", help="Column holding the appeal text.")]
LabelColumn = Annotated[
    str,
    typer.Option(
        "--label-column", help="Column holding a level-1 name, a category path or a category code."
    ),
]
DepartmentColumn = Annotated[
    str | None,
    typer.Option("--department-column", help="Column holding the responsible department code."),
]


@app.command("train")
def train(
    data: DataOption,
    text_column: TextColumn,
    label_column: LabelColumn,
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model to.")],
    department_column: DepartmentColumn = None,
    holdout: Annotated[
        float, typer.Option(help="Share of rows held out for the metrics in metadata.json.")
    ] = 0.1,
    free_labels: Annotated[
        bool, typer.Option("--free-labels", help="Use labels as written, not the catalogue.")
    ] = False,
    user_dict: Annotated[
        Path | None, typer.Option("--user-dict", help="jieba user dictionary (word freq tag).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Train a category (and department) model on labelled appeals."""
    from tqdm import tqdm

    from training.workflow import train_model

    if user_dict is not None and not user_dict.is_file():
        raise CliError(f"user dictionary not found: {user_dict}")
    bar = None  # created on the first progress report, i.e. once the data has been validated

    def progress(stage: str, fraction: float) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=100, desc="train", unit="%", bar_format="{l_bar}{bar}| {elapsed}")
        bar.set_description(f"train: {stage}", refresh=False)
        bar.update(max(0, round(100 * fraction) - bar.n))

    try:
        result = train_model(
            [str(p) for p in data],
            text_column=text_column,
            label_column=label_column,
            out=out,
            department_column=department_column,
            free_labels=free_labels,
            holdout=holdout,
            user_dict=str(user_dict) if user_dict else None,
            seed=seed,
            progress=progress,
        )
    finally:
        if bar is not None:
            bar.close()
    typer.echo(
        f"trained on {result.rows} rows ({result.dropped} dropped), {result.classes} "
        f"{result.label_kind} labels to depth {result.depth} in {result.seconds:.1f}s "
        f"→ {result.model_dir}"
    )
    if result.metrics:
        levels = ", ".join(
            f"L{lv['level']} acc {lv['accuracy']:.3f} F1 {lv['macro_f1']:.3f}"
            for lv in result.metrics["levels"]
        )
        typer.echo(f"held-out: {levels}; ECE {result.metrics['ece']:.3f}")


@app.command("predict")
def predict(
    model: Annotated[Path, typer.Option("--model", help="Model directory.")],
    input: Annotated[Path, typer.Option("--input", help="CSV or JSONL file to label.")],
    text_column: TextColumn,
    output: Annotated[Path, typer.Option("--output", help="CSV or JSONL file to write.")],
) -> None:
    """Write the input rows with the predicted label, confidence, category and department."""
    from training.workflow import predict_file

    count = predict_file(
        model_dir=model, input_path=input, text_column=text_column, output_path=output
    )
    typer.echo(f"wrote {count} rows to {output}")


@app.command("evaluate")
def evaluate(
    model: Annotated[Path, typer.Option("--model", help="Model directory.")],
    data: DataOption,
    text_column: TextColumn,
    label_column: LabelColumn,
    department_column: DepartmentColumn = None,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report-dir", help="Where to write the reports (default: MODEL/reports)."),
    ] = None,
) -> None:
    """Print accuracy, macro-F1, top-3, department accuracy, ECE and the coverage curve."""
    from training.report import format_summary, write_report
    from training.workflow import evaluate_model

    report = evaluate_model(
        model_dir=model,
        data=[str(p) for p in data],
        text_column=text_column,
        label_column=label_column,
        department_column=department_column,
    )
    typer.echo(format_summary(report["metrics"]))
    json_path, html_path = write_report(report, report_dir or model / "reports")
    typer.echo(f"report: {json_path} and {html_path}")


# -- the model registry ---------------------------------------------------------------------------

registry_app = typer.Typer(
    name="models",
    help="The model registry: list, activate and roll back versions.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="models")


def _registry_session() -> AbstractContextManager[Session]:
    from service.runtime import get_database

    return get_database().session()


def _describe(row: ModelVersion) -> str:
    metrics = row.metrics or {}

    def fmt(name: str) -> str:
        value = metrics.get(name)
        return "-" if value is None else f"{value:.3f}"

    marker = "*" if row.status == "active" else " "
    return (
        f"{marker} {row.version:<28} {row.status:<9} {row.source or '-':<10} "
        f"acc {fmt('accuracy')}  dept {fmt('department_accuracy')}  "
        f"{row.created_at:%Y-%m-%d %H:%M}"
    )


@registry_app.command("list")
def list_models() -> None:
    """List the registered versions, newest first (* marks the active one)."""
    from training import registry

    with _registry_session() as db_session:
        rows = registry.list_versions(db_session=db_session)
        if not rows:
            typer.echo("no registered model versions")
        for row in rows:
            typer.echo(_describe(row))


@registry_app.command("register")
def register_model(
    directory: Annotated[Path, typer.Argument(help="A model directory (e.g. from hotline train).")],
    activate: Annotated[
        bool,
        typer.Option("--activate", help="Activate it at once (otherwise it stays a candidate)."),
    ] = False,
) -> None:
    """Copy a trained model directory into the registry as a new version."""
    from service.config import get_settings
    from training import registry

    if not directory.is_dir():
        raise CliError(f"model directory not found: {directory}")
    with _registry_session() as db_session:
        row = registry.register(
            db_session=db_session,
            artifact_dir=directory,
            versions_dir=get_settings().model_versions_dir,
            source="cli",
            provenance={"registered_from": str(directory.resolve())},
            move=False,
        )
        if activate:
            registry.activate(db_session=db_session, version=row.version)
        typer.echo(f"registered {row.version} ({row.status})")


@registry_app.command("activate")
def activate_model(version: Annotated[str, typer.Argument(help="The version to serve.")]) -> None:
    """Serve VERSION from now on (a rejected version or a missing artifact is refused)."""
    from training import registry

    with _registry_session() as db_session:
        row = registry.activate(db_session=db_session, version=version)
        typer.echo(f"active: {row.version}")


@registry_app.command("rollback")
def rollback_model() -> None:
    """Reactivate the version that was active before the current one."""
    from training import registry

    with _registry_session() as db_session:
        row = registry.rollback(db_session=db_session)
        typer.echo(f"rolled back; active: {row.version}")


@app.command("retrain")
def retrain(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="Base corpus file, CSV or JSONL (repeatable; default: HOTLINE_TRAINING_BASE_FILES "
            "or the seeded demo corpus).",
            show_default=False,
        ),
    ] = None,
    from_db: Annotated[
        bool, typer.Option("--from-db", help="Also learn from the work-order history.")
    ] = False,
    no_base: Annotated[
        bool, typer.Option("--no-base", help="No base corpus: the history alone (with --from-db).")
    ] = False,
    text_column: Annotated[str | None, typer.Option("--text-column")] = None,
    label_column: Annotated[str | None, typer.Option("--label-column")] = None,
    department_column: Annotated[str | None, typer.Option("--department-column")] = None,
) -> None:
    """Train a new version, register it and activate it if it is not worse than the active one."""
    from service.config import get_settings
    from service.runtime import get_database
    from service.worker.training import run_job
    from training import registry
    from training.models import TrainingJob

    for path in data or []:
        if not path.is_file():
            raise CliError(f"file not found: {path}")
    if no_base and not from_db:
        raise CliError("--no-base needs --from-db: there would be nothing to train on")
    params: dict[str, object] = {
        "from_db": from_db,
        "include_base": not no_base,
        "data_files": [str(p.resolve()) for p in data or []],
        "source": "cli",
    }
    for name, value in (
        ("text_column", text_column),
        ("label_column", label_column),
        ("department_column", department_column),
    ):
        if value:
            params[name] = value
    database = get_database()
    with database.session() as db_session:
        job_id = registry.queue_training_job(
            db_session=db_session, params=params, requested_by="cli", exclusive=False
        ).id
    status = run_job(job_id=job_id, database=database, settings=get_settings())
    with database.session() as db_session:
        job = db_session.get_one(TrainingJob, job_id)
        message, version, promoted = job.message, job.version, job.promoted
    if status != "succeeded":
        raise CliError(f"retraining failed: {message}")
    typer.echo(f"version {version}: {'activated' if promoted else 'not activated'} — {message}")
