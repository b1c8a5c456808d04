"""Commands for reference and demo data (`hotline demo-data`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from service.cli.app import CliError, app

SUFFIXES = (".csv", ".jsonl")


@app.command("demo-data")
def demo_data(
    count: Annotated[
        int, typer.Option("--count", "-n", help="Number of appeals to generate")
    ] = 200_000,
    seed: Annotated[
        int, typer.Option("--seed", "-s", help="Random seed (same seed, same corpus)")
    ] = 12345,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file: .csv, or .jsonl for JSON lines")
    ] = Path("var/demo_corpus.csv"),
    noise: Annotated[
        float, typer.Option(help="Share of appeals with a wrong recorded label")
    ] = 0.03,
    multi_issue: Annotated[
        float, typer.Option(help="Share of appeals raising a second issue")
    ] = 0.05,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Show a progress bar")
    ] = True,
) -> None:
    """Generate a seeded, labelled demo corpus of 12345 appeals (生成演示诉求语料)."""
    from fixtures.generator import write_corpus

    if count <= 0:
        raise CliError(f"--count must be a positive number, got {count}")
    for name, value in (("--noise", noise), ("--multi-issue", multi_issue)):
        if not 0.0 <= value <= 1.0:
            raise CliError(f"{name} must be between 0 and 1, got {value}")
    if out.suffix.lower() not in SUFFIXES:
        raise CliError(f"--out must end in .csv or .jsonl, got {out.name!r}")
    if out.exists() and out.is_dir():
        raise CliError(f"--out is a directory: {out}")
    started = time.perf_counter()
    try:
        written = write_corpus(
            out, count, seed, progress=progress, noise=noise, multi_issue=multi_issue
        )
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    elapsed = time.perf_counter() - started
    typer.echo(f"wrote {written} appeals to {out} in {elapsed:.1f}s (seed {seed})")
