"""Commands for models (`hotline train`, `predict`, `evaluate`).

Expected failures (missing file or column, empty data, a single class, a corrupt model
directory) raise `ClassifierError` subclasses or FileNotFoundError, which `main()` prints as one
line with exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.app import CliError, app

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
