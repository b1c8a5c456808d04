"""Reading appeal datasets: CSV or JSONL files, utf-8 / utf-8-sig / gb18030, selected columns.

Rows with an empty text or label are dropped (and counted); everything else that makes a file
unusable raises `DatasetError` with a message naming the file and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from classifier.errors import DatasetError

__all__ = ["Dataset", "detect_encoding", "load_dataset", "read_rows", "write_rows"]

_ENCODINGS = ("utf-8-sig", "gb18030")
csv.field_size_limit(1 << 26)


def detect_encoding(data: bytes) -> str:
    """utf-8 (with or without BOM) if it decodes, else gb18030; DatasetError if neither does."""
    for encoding in _ENCODINGS:
        try:
            data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return encoding
    raise DatasetError("cannot decode the file as utf-8 or gb18030")


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson")


def read_rows(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, rows) of a CSV or JSONL file. FileNotFoundError if it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    raw = path.read_bytes()
    try:
        text = raw.decode(detect_encoding(raw))
    except DatasetError:
        raise DatasetError(f"{path}: cannot decode as utf-8 or gb18030") from None
    if _is_jsonl(path):
        rows: list[dict[str, str]] = []
        columns: dict[str, None] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise DatasetError(f"{path}:{lineno}: each line must be a JSON object")
            row = {str(k): "" if v is None else str(v) for k, v in obj.items()}
            columns.update(dict.fromkeys(row))
            rows.append(row)
        return list(columns), rows
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = [{k: v or "" for k, v in row.items() if k is not None} for row in reader]
    except csv.Error as exc:
        raise DatasetError(f"{path}: malformed CSV ({exc})") from None
    return list(reader.fieldnames or []), rows


def write_rows(path: str | Path, columns: Sequence[str], rows: Sequence[dict[str, object]]) -> None:
    """Write rows as CSV (utf-8) or JSONL, chosen by the suffix of `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        if _is_jsonl(path):
            for row in rows:
                fh.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({c: "" if row.get(c) is None else row.get(c) for c in columns})
    tmp.replace(path)


@dataclass
class Dataset:
    """Texts with optional labels and departments, as read from one or more files."""

    texts: list[str]
    labels: list[str] | None = None
    departments: list[str | None] | None = None
    rows: list[dict[str, str]] = field(default_factory=list, repr=False)
    columns: list[str] = field(default_factory=list)
    dropped: int = 0
    files: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for i, text in enumerate(self.texts):
            label = self.labels[i] if self.labels else ""
            dept = (self.departments[i] if self.departments else "") or ""
            digest.update(f"{text}\x1f{label}\x1f{dept}\x1e".encode())
        return "sha256:" + digest.hexdigest()


def load_dataset(
    paths: Sequence[str | Path],
    *,
    text_column: str,
    label_column: str | None = None,
    department_column: str | None = None,
    keep_rows: bool = False,
) -> Dataset:
    """Read and concatenate files; DatasetError on a missing column or an empty result."""
    if not paths:
        raise DatasetError("no data file given")
    texts: list[str] = []
    labels: list[str] = []
    departments: list[str | None] = []
    kept_rows: list[dict[str, str]] = []
    columns: list[str] = []
    dropped = 0
    for path in paths:
        cols, rows = read_rows(path)
        for column in (text_column, label_column, department_column):
            if column and column not in cols:
                shown = ", ".join(cols[:12]) or "none"
                raise DatasetError(f"{path}: no column {column!r} (columns: {shown})")
        for c in cols:
            if c not in columns:
                columns.append(c)
        for row in rows:
            text = (row.get(text_column) or "").strip()
            label = (row.get(label_column) or "").strip() if label_column else ""
            if not text or (label_column and not label):
                dropped += 1
                continue
            texts.append(text)
            labels.append(label)
            if department_column:
                departments.append((row.get(department_column) or "").strip() or None)
            if keep_rows:
                kept_rows.append(row)
    if not texts:
        names = ", ".join(str(p) for p in paths)
        raise DatasetError(f"no usable rows in {names} (empty dataset)")
    return Dataset(
        texts=texts,
        labels=labels if label_column else None,
        departments=departments if department_column else None,
        rows=kept_rows,
        columns=columns,
        dropped=dropped,
        files=[str(p) for p in paths],
    )
