"""Seeded demo corpora for training tests, written by the fixtures generator."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory) -> dict[str, Path]:
    from fixtures.generator import write_corpus

    root = tmp_path_factory.mktemp("demo")
    files = {"train": root / "train.csv", "test": root / "test.jsonl"}
    write_corpus(files["train"], 900, seed=11, progress=False)
    write_corpus(files["test"], 150, seed=12, progress=False)
    return files


@pytest.fixture(scope="session")
def trained_model(demo_files, tmp_path_factory) -> Path:
    from service.cli import main

    out = tmp_path_factory.mktemp("models") / "demo"
    main(
        [
            "train",
            "--data",
            str(demo_files["train"]),
            "--text-column",
            "text",
            "--label-column",
            "category_code",
            "--department-column",
            "department_code",
            "--out",
            str(out),
        ]
    )
    return out
