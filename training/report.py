"""Evaluation reports: a JSON file for machines and a self-contained HTML page for people
(plain tables and inline SVG; nothing is loaded from the internet)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["format_summary", "write_report"]


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}%"


def format_summary(metrics: dict[str, Any]) -> str:
    """The plain-text summary printed by `hotline evaluate`."""
    lines = [f"rows: {metrics['rows']}"]
    lines.append("level  rows    accuracy  macro-F1  top-3     ECE")
    for lv in metrics["levels"]:
        lines.append(
            f"{lv['level']:<6} {lv['rows']:<7} {_pct(lv['accuracy']):>8}  {lv['macro_f1']:.4f}"
            f"    {_pct(lv['top3_accuracy']):>6}  {lv['ece']:.4f}"
        )
    dept = metrics.get("department")
    if dept:
        lines.append(
            f"department accuracy: {_pct(dept['accuracy'])} (top-3 {_pct(dept['top3_accuracy'])},"
            f" ECE {dept['ece']:.4f}, {dept['rows']} rows)"
        )
    else:
        lines.append("department accuracy: – (no department column or no department model)")
    routed = metrics.get("routed_department")
    if routed:
        lines.append(
            f"routed department (learned, else the catalogue's lead): {_pct(routed['accuracy'])}"
            f" ({routed['rows']} rows, {_pct(routed['from_catalogue'])} from the catalogue)"
        )
    lines.append(
        f"accuracy at the gold depth: {_pct(metrics['accuracy'])}, ECE {metrics['ece']:.4f}"
    )
    lines.append("auto-dispatch threshold  coverage  accuracy")
    for point in metrics["coverage_curve"]:
        lines.append(
            f"  >= {point['threshold']:<19.2f} {_pct(point['coverage']):>8}  "
            f"{_pct(point['accuracy']):>8}"
        )
    return "\n".join(lines)


def _svg_curve(points: list[dict[str, float]]) -> str:
    width, height, pad = 360, 240, 36
    pts = [p for p in points if not math.isnan(p["accuracy"])]

    def xy(cov: float, acc: float) -> tuple[float, float]:
        return pad + cov * (width - 2 * pad), height - pad - acc * (height - 2 * pad)

    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(p["coverage"], p["accuracy"]) for p in pts))
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>threshold {p["threshold"]:.2f}: '
        f"coverage {_pct(p['coverage'])}, accuracy {_pct(p['accuracy'])}</title></circle>"
        for p in pts
        for x, y in [xy(p["coverage"], p["accuracy"])]
    )
    x0, y0 = xy(0, 0)
    x1, y1 = xy(1, 1)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'role="img" aria-label="accuracy against coverage">'
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#999"/>'
        f'<polyline points="{path}" fill="none" stroke="#1f6feb" stroke-width="2"/>{dots}'
        f'<text x="{width / 2}" y="{height - 6}" text-anchor="middle" font-size="12">'
        "coverage</text>"
        f'<text x="10" y="{height / 2}" font-size="12" transform="rotate(-90 10 {height / 2})" '
        'text-anchor="middle">accuracy</text></svg>'
    )


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html(report: dict[str, Any]) -> str:
    m = report["metrics"]
    levels = _table(
        ["level", "rows", "classes", "accuracy", "macro-F1", "top-3 accuracy", "ECE"],
        [
            [
                lv["level"],
                lv["rows"],
                lv["classes"],
                _pct(lv["accuracy"]),
                f"{lv['macro_f1']:.4f}",
                _pct(lv["top3_accuracy"]),
                f"{lv['ece']:.4f}",
            ]
            for lv in m["levels"]
        ],
    )
    dept = m.get("department")
    dept_html = (
        _table(
            ["rows", "accuracy", "top-3 accuracy", "ECE"],
            [
                [
                    dept["rows"],
                    _pct(dept["accuracy"]),
                    _pct(dept["top3_accuracy"]),
                    f"{dept['ece']:.4f}",
                ]
            ],
        )
        if dept
        else "<p>No department labels or no department model.</p>"
    )
    curve = _table(
        ["threshold", "coverage", "accuracy", "appeals"],
        [
            [f"{p['threshold']:.2f}", _pct(p["coverage"]), _pct(p["accuracy"]), p["count"]]
            for p in m["coverage_curve"]
        ],
    )
    reliability = _table(
        ["confidence bin", "appeals", "mean confidence", "accuracy"],
        [
            [
                f"{b['lower']:.1f}–{b['upper']:.1f}",
                b["count"],
                _pct(b["confidence"]),
                _pct(b["accuracy"]),
            ]
            for b in m["reliability"]
        ],
    )
    info = _table(
        ["", ""],
        [
            ["model", report.get("model", "")],
            ["data", ", ".join(report.get("data", []))],
            ["created", report.get("created_at", "")],
            ["accuracy at gold depth", _pct(m["accuracy"])],
            ["ECE at gold depth", f"{m['ece']:.4f}"],
        ],
    )
    style = (
        "body{font-family:sans-serif;margin:2em;max-width:60em}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Model evaluation</title><style>{style}</style></head><body>"
        f"<h1>Model evaluation</h1>{info}<h2>Per level</h2>{levels}"
        f"<h2>Department</h2>{dept_html}"
        f"<h2>Auto-dispatch: accuracy against coverage</h2>{_svg_curve(m['coverage_curve'])}{curve}"
        f"<h2>Calibration (reliability)</h2>{reliability}</body></html>"
    )


def write_report(
    report: dict[str, Any], directory: str | Path, stem: str = "evaluation"
) -> tuple[Path, Path]:
    """Write `<stem>.json` and `<stem>.html` into `directory`; returns both paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / f"{stem}.json"
    html_path = out / f"{stem}.html"
    json_path.write_text(
        json.dumps(report, ensure_ascii=False, indent=2, allow_nan=True), encoding="utf-8"
    )
    html_path.write_text(_html(report), encoding="utf-8")
    return json_path, html_path
