from __future__ import annotations

import json

import pytest

from classifier import DatasetError
from training.datasets import load_dataset, read_rows, write_rows


def test_reads_utf8_with_bom_and_gb18030_csv(tmp_path):
    text = "text,label\n小区停水,城乡建设\n公交太少,交通运输\n"
    (tmp_path / "bom.csv").write_bytes(text.encode("utf-8-sig"))
    (tmp_path / "gb.csv").write_bytes(text.encode("gb18030"))
    for name in ("bom.csv", "gb.csv"):
        columns, rows = read_rows(tmp_path / name)
        assert columns == ["text", "label"]
        assert rows[0] == {"text": "小区停水", "label": "城乡建设"}


def test_reads_jsonl_and_skips_blank_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    lines = [json.dumps({"text": "小区停水", "label": "城乡建设"}, ensure_ascii=False), ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    ds = load_dataset([path], text_column="text", label_column="label")
    assert ds.texts == ["小区停水"] and ds.labels == ["城乡建设"]


def test_rows_without_text_or_label_are_dropped_and_counted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n小区停水,城乡建设\n,交通运输\n公交太少,\n", encoding="utf-8")
    ds = load_dataset([path], text_column="text", label_column="label")
    assert ds.texts == ["小区停水"] and ds.dropped == 2


def test_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("content,label\n小区停水,城乡建设\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no column 'text'"):
        load_dataset([path], text_column="text", label_column="label")


def test_empty_dataset_is_an_error(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="empty"):
        load_dataset([path], text_column="text", label_column="label")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_dataset([tmp_path / "nope.csv"], text_column="text")


def test_write_rows_round_trips_csv_and_jsonl(tmp_path):
    rows = [{"text": "小区停水", "confidence": 0.5}]
    for name in ("out.csv", "out.jsonl"):
        write_rows(tmp_path / name, ["text", "confidence"], rows)
        _, back = read_rows(tmp_path / name)
        assert back[0]["text"] == "小区停水" and float(back[0]["confidence"]) == 0.5
