"""`hotline train | predict | evaluate` through `service.cli.main`."""

from __future__ import annotations

import json
import shutil

import pytest

from service.cli import main
from training.datasets import read_rows


def run_fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def train_argv(data, out, text_column="text", label_column="label") -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--text-column",
        text_column,
        "--label-column",
        label_column,
        "--out",
        str(out),
    ]


def test_train_writes_model_and_metadata_with_metrics(trained_model):
    meta = json.loads((trained_model / "metadata.json").read_text(encoding="utf-8"))
    assert (trained_model / "model.joblib").is_file()
    assert meta["label_kind"] == "taxonomy"
    assert meta["depth"] == 3
    assert meta["departments"]
    levels = meta["metrics"]["levels"]
    assert [lv["level"] for lv in levels] == [1, 2, 3]
    assert levels[0]["accuracy"] > 0.5
    assert meta["data_fingerprint"].startswith("sha256:")


def test_predict_adds_label_confidence_category_and_department(
    trained_model, demo_files, tmp_path, capsys
):
    out = tmp_path / "pred.csv"
    main(
        [
            "predict",
            "--model",
            str(trained_model),
            "--input",
            str(demo_files["test"]),
            "--text-column",
            "text",
            "--output",
            str(out),
        ]
    )
    columns, rows = read_rows(out)
    for column in (
        "text",
        "predicted_label",
        "confidence",
        "category_code",
        "category_path",
        "department_code",
    ):
        assert column in columns
    assert len(rows) == 150
    row = rows[0]
    assert row["predicted_label"] == row["category_path"]
    assert row["predicted_label"].count("/") == 2
    assert row["category_code"] and row["department_code"]
    assert 0 < float(row["confidence"]) <= 1
    assert "wrote 150 rows" in capsys.readouterr().out


def test_evaluate_prints_metrics_and_writes_reports(trained_model, demo_files, tmp_path, capsys):
    main(
        [
            "evaluate",
            "--model",
            str(trained_model),
            "--data",
            str(demo_files["test"]),
            "--text-column",
            "text",
            "--label-column",
            "category_path",
            "--department-column",
            "department_code",
            "--report-dir",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert "macro-F1" in out and "department accuracy" in out and "coverage" in out
    report = json.loads((tmp_path / "evaluation.json").read_text(encoding="utf-8"))
    assert report["metrics"]["department"]["accuracy"] > 0
    assert len(report["metrics"]["levels"]) == 3
    html = (tmp_path / "evaluation.html").read_text(encoding="utf-8")
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org/2000/svg", "")


def test_train_on_level_one_labels_of_free_text(tmp_path, capsys):
    data = tmp_path / "l1.csv"
    rows = ["text,label"] + [f"小区物业乱收费{i},城乡建设" for i in range(30)]
    rows += [f"公交线路班次太少{i},交通运输" for i in range(30)]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    main(
        [
            "train",
            "--data",
            str(data),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text(encoding="utf-8"))
    assert meta["depth"] == 1 and set(meta["labels"]) == {"城乡建设", "交通运输"}


def test_missing_file_fails_with_one_line(tmp_path, capsys):
    err = run_fails(
        [
            "train",
            "--data",
            str(tmp_path / "none.csv"),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--out",
            str(tmp_path / "m"),
        ],
        capsys,
    )
    assert "none.csv" in err


def test_missing_column_fails_with_one_line(demo_files, tmp_path, capsys):
    err = run_fails(
        [
            "train",
            "--data",
            str(demo_files["train"]),
            "--text-column",
            "body",
            "--label-column",
            "category_code",
            "--out",
            str(tmp_path / "m"),
        ],
        capsys,
    )
    assert "body" in err


def test_empty_dataset_fails_with_one_line(tmp_path, capsys):
    data = tmp_path / "empty.csv"
    data.write_text("text,label\n", encoding="utf-8")
    err = run_fails(train_argv(data, tmp_path / "m"), capsys)
    assert "empty" in err


def test_single_class_fails_with_one_line(tmp_path, capsys):
    data = tmp_path / "one.csv"
    data.write_text("text,label\n小区停水,城乡建设\n物业收费,城乡建设\n", encoding="utf-8")
    err = run_fails(train_argv(data, tmp_path / "m"), capsys)
    assert "single" in err


def test_corrupt_model_directory_fails_with_one_line(trained_model, demo_files, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(trained_model, broken)
    (broken / "model.joblib").write_bytes(b"garbage")
    for argv in (
        [
            "predict",
            "--model",
            str(broken),
            "--input",
            str(demo_files["test"]),
            "--text-column",
            "text",
            "--output",
            str(tmp_path / "p.csv"),
        ],
        [
            "evaluate",
            "--model",
            str(broken),
            "--data",
            str(demo_files["test"]),
            "--text-column",
            "text",
            "--label-column",
            "category_code",
        ],
    ):
        assert "model" in run_fails(argv, capsys)


def test_missing_model_directory_fails_with_one_line(demo_files, tmp_path, capsys):
    err = run_fails(
        [
            "predict",
            "--model",
            str(tmp_path / "none"),
            "--input",
            str(demo_files["test"]),
            "--text-column",
            "text",
            "--output",
            str(tmp_path / "p.csv"),
        ],
        capsys,
    )
    assert "not found" in err
