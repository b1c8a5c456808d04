"""Real-data routing benchmark of the default model recipe (`training.default_model`).

    python -m benchmarks.real_routing                  # 5-fold, the default synthetic count
    python -m benchmarks.real_routing --quick          # one fold of five, 10,000 synthetic appeals
    python -m benchmarks.real_routing --no-real        # the synthetic corpus alone ("before")
    python -m benchmarks.real_routing --folds 3 --synthetic-count 20000 --json out.json

k-fold over the real labelled messages (`fixtures.real`, the TipDM 2020 contest messages): each
fold's model is trained on the synthetic corpus, the real messages of the other folds and all
the real titles (titles cannot be linked to messages, so a held-out message's title may be among
them), and tested on the held-out messages. Reported, pooled over the folds:

- level-1 accuracy and macro-F1 (averaged over the 7 gold classes; a prediction in any of the
  other 8 level-1 groups is an error);
- auto-dispatch at the threshold, as `router.routing.route` decides it (a leaf, a department and
  `RouteDecision.department_confidence` at or above the threshold): coverage (share
  auto-dispatched) and precision judged at the depth the gold label has, level 1 (the leaf of a
  real message is unknown); the precision/coverage curve over thresholds for that confidence,
  and for comparison for the leaf path's probability and the level-1 probability; on synthetic
  held-out appeals, where the department is known, the same curves judged by the department;
- the unseen-word share: of the words of the held-out messages (as the model segments them), the
  share, and of the distinct words, the share that are not in the model's vocabulary;
- department agreement on the messages whose official reply names a department
  (`fixtures/data/real/messages_with_replies.csv.gz`, never trained on): the routed department,
  the catalogue's lead of the predicted category and the department model's top-1 against it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from classifier import HotlineClassifier, Suggestion
from classifier.model import split_label

CURVE = (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)


def default_threshold() -> float:
    from service.config import Settings

    return float(Settings.model_fields["auto_dispatch_threshold"].default)


def unseen_word_share(model: HotlineClassifier, texts: Sequence[str]) -> tuple[float, float]:
    """(share of word tokens, share of distinct words) of `texts` outside the model's words."""
    known = model.features_.word_id
    tokens = [w for text in texts for w in model._tokens(text)[0]]
    if not tokens:
        return float("nan"), float("nan")
    distinct = set(tokens)
    return (
        sum(w not in known for w in tokens) / len(tokens),
        sum(w not in known for w in distinct) / len(distinct),
    )


def wilson_lower(hits: int, n: int, z: float = 1.96) -> float:
    """Lower bound of the 95 % Wilson interval of a proportion."""
    if n == 0:
        return float("nan")
    p = hits / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def _routes(suggestions: Sequence[Suggestion], texts: Sequence[str]) -> list[Any]:
    from router.catalogue import default_catalogue
    from router.routing import RoutingPolicy, route

    catalogue = default_catalogue()
    # threshold 0: `auto_dispatch` then says whether the route is dispatchable at all (a leaf and
    # a department); the benchmark applies the thresholds itself
    policy = RoutingPolicy(auto_dispatch_threshold=0.0)
    return [
        route(catalogue=catalogue, suggestion=s, text=t, policy=policy)
        for s, t in zip(suggestions, texts, strict=True)
    ]


def _lead_of(label: str) -> str | None:
    from router.catalogue import default_catalogue

    catalogue = default_catalogue()
    category = catalogue.resolve_label(label)
    return None if category is None else catalogue.responsible_department(category.code)


def level1_probability(
    model: HotlineClassifier, suggestions: Sequence[Suggestion], texts: Sequence[str]
) -> list[float]:
    """The calibrated probability of each suggestion's level-1 group, from the root model
    (`Suggestion.levels` sums only the beam's top paths, a lower bound)."""
    from classifier.calibration import softmax

    root = model.nodes_[""]
    probs = softmax(root.scores(model._transform(list(texts))), model.temperatures_.get(0, 1.0))
    column = {c: j for j, c in enumerate(root.classes)}
    return [float(probs[r, column[split_label(s.label)[0]]]) for r, s in enumerate(suggestions)]


def synthetic_rows(
    model: HotlineClassifier, test: Sequence[dict[str, str]]
) -> list[dict[str, Any]]:
    """Per synthetic held-out appeal: leaf right (`hit`), routed department right (the handler
    or the lead the generator recorded), confidence."""
    from router.catalogue import default_catalogue
    from training.labels import LabelResolver

    resolver = LabelResolver(default_catalogue())
    texts = [r["text"] for r in test]
    suggestions = model.suggest_batch(texts, k=5, explain=False)
    routes = _routes(suggestions, texts)
    out = []
    for s, r, row in zip(suggestions, routes, test, strict=True):
        info = resolver.describe(s.label)
        out.append(
            {
                "hit": info["category_code"] == row["category_code"],
                "department_hit": r.department_code
                in (row["handler_code"], row["department_code"]),
                "leaf_conf": s.confidence,
                "dept_conf": r.department_confidence,
                "dispatchable": r.auto_dispatch,
            }
        )
    return out


def run_fold(
    k: int,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    *,
    synthetic: Any,
    messages: Any,
    titles: Any,
    replies: Sequence[Any],
    synthetic_test: Sequence[dict[str, str]],
    use_real: bool,
    seed: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    from training.default_model import fit_default_model, real_training_set
    from training.evaluation import evaluate_suggestions

    training_set = synthetic
    if use_real:
        training_set = synthetic + real_training_set(
            messages=(
                [messages.texts[i] for i in train_idx],
                [messages.labels[i] for i in train_idx],
            ),
            titles=(titles.texts, titles.labels),
        )
    started = time.perf_counter()
    model = fit_default_model(training_set, seed=seed, params=params)
    train_s = time.perf_counter() - started
    texts = [messages.texts[i] for i in test_idx]
    gold = [messages.labels[i] for i in test_idx]
    suggestions = model.suggest_batch(texts, k=5, explain=False)
    metrics = evaluate_suggestions(suggestions, gold)
    routes = _routes(suggestions, texts)
    predicted_l1 = [split_label(s.label)[0] for s in suggestions]
    unseen_tokens, unseen_types = unseen_word_share(model, texts)
    l1_probs = level1_probability(model, suggestions, texts)

    reply_texts = [m.detail for m in replies]
    reply_sugg = model.suggest_batch(reply_texts, k=5, explain=False)
    reply_routes = _routes(reply_sugg, reply_texts)
    gold_dept = [m.department_code for m in replies]
    agreement = {
        "routed": float(
            np.mean([r.department_code == g for r, g in zip(reply_routes, gold_dept, strict=True)])
        ),
        "catalogue_lead": float(
            np.mean([_lead_of(s.label) == g for s, g in zip(reply_sugg, gold_dept, strict=True)])
        ),
        "model": float(
            np.mean(
                [
                    (s.department[0] if s.department else None) == g
                    for s, g in zip(reply_sugg, gold_dept, strict=True)
                ]
            )
        ),
    }
    result = {
        "fold": k,
        "train_rows": len(training_set),
        "train_s": train_s,
        "test_rows": len(texts),
        "level1_accuracy": metrics["levels"][0]["accuracy"],
        "level1_macro_f1": float(
            f1_score(gold, predicted_l1, labels=sorted(set(gold)), average="macro")
        ),
        "level1_ece": metrics["levels"][0]["ece"],
        "unseen_token_share": unseen_tokens,
        "unseen_word_share": unseen_types,
        "department_agreement": agreement,
        "temperatures": {str(d): round(t, 4) for d, t in model.temperatures_.items()},
        "synthetic_rows": synthetic_rows(model, synthetic_test),
        # per test row, for the pooled curve
        "rows": [
            {
                "hit": p == g,
                "gold": g,
                "pred": p,
                "leaf_conf": s.confidence,
                "l1_conf": q,
                "dept_conf": r.department_confidence,
                "dispatchable": r.auto_dispatch,
            }
            for s, g, p, r, q in zip(suggestions, gold, predicted_l1, routes, l1_probs, strict=True)
        ],
    }
    print(
        f"  fold {k}: {len(training_set)} train rows, {train_s:.0f}s; L1 acc "
        f"{result['level1_accuracy']:.4f} macro-F1 {result['level1_macro_f1']:.4f}; unseen words "
        f"{unseen_tokens:.3f} (distinct {unseen_types:.3f}); dept agreement routed "
        f"{agreement['routed']:.3f}",
        flush=True,
    )
    return result


def curve(rows: Sequence[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Precision (level 1) and coverage of auto-dispatch at each threshold of `CURVE`."""
    out = []
    for t in CURVE:
        sent = [r for r in rows if r["dispatchable"] and r[key] >= t]
        hits = sum(r["hit"] for r in sent)
        out.append(
            {
                "threshold": t,
                "coverage": len(sent) / len(rows),
                "precision": hits / len(sent) if sent else float("nan"),
                "precision_lower95": wilson_lower(hits, len(sent)),
                "count": len(sent),
            }
        )
    return out


def choose_threshold(
    real_curve: list[dict[str, Any]], synthetic_curve: list[dict[str, Any]], floor: float = 0.95
) -> float | None:
    """The lowest threshold of `CURVE` from which on the level-1 precision on real held-out
    messages and the routed-department precision on synthetic held-out appeals both stay at or
    above `floor` (a real message's leaf and department are unknown; the synthetic appeals judge
    that part)."""
    chosen = None
    for r, s in zip(reversed(real_curve), reversed(synthetic_curve), strict=True):
        ok = all(not math.isnan(c["precision"]) and c["precision"] >= floor for c in (r, s)) or (
            r["count"] == 0 and s["count"] == 0
        )
        if not ok:
            break
        chosen = r["threshold"]
    return chosen


def summarize(folds: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    from classifier.calibration import expected_calibration_error

    rows = [r for f in folds for r in f["rows"]]
    synthetic = [r for f in folds for r in f["synthetic_rows"]]
    # What route() compares with the threshold: the routed department's confidence.
    real_curve = curve(rows, "dept_conf")
    synthetic_curve = curve([r | {"hit": r["department_hit"]} for r in synthetic], "dept_conf")
    gold = [r["gold"] for r in rows]
    pred = [r["pred"] for r in rows]
    sent = [r for r in rows if r["dispatchable"] and r["dept_conf"] >= threshold]
    return {
        "test_rows": len(rows),
        "level1_accuracy": float(np.mean([r["hit"] for r in rows])),
        "level1_macro_f1": float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro")),
        "level1_macro_f1_fold_mean": statistics.mean(f["level1_macro_f1"] for f in folds),
        "threshold": threshold,
        "auto_dispatch_coverage": len(sent) / len(rows),
        "auto_dispatch_precision": (
            sum(r["hit"] for r in sent) / len(sent) if sent else float("nan")
        ),
        "auto_dispatch_precision_lower95": wilson_lower(sum(r["hit"] for r in sent), len(sent)),
        "unseen_token_share": statistics.mean(f["unseen_token_share"] for f in folds),
        "unseen_word_share": statistics.mean(f["unseen_word_share"] for f in folds),
        "department_agreement": {
            key: statistics.mean(f["department_agreement"][key] for f in folds)
            for key in ("routed", "catalogue_lead", "model")
        },
        "level1_ece": expected_calibration_error(
            [r["l1_conf"] for r in rows], [r["hit"] for r in rows]
        ),
        "synthetic_test_rows": len(synthetic),
        "synthetic_leaf_accuracy": float(np.mean([r["hit"] for r in synthetic])),
        "synthetic_department_accuracy": float(np.mean([r["department_hit"] for r in synthetic])),
        "curve_leaf_confidence": curve(rows, "leaf_conf"),
        "curve_synthetic_leaf": curve(synthetic, "leaf_conf"),
        "curve_synthetic_department": curve(
            [r | {"hit": r["department_hit"]} for r in synthetic], "leaf_conf"
        ),
        "curve_level1_confidence": curve(rows, "l1_conf"),
        "curve_department_confidence_real": real_curve,
        "curve_department_confidence_synthetic": synthetic_curve,
        "chosen_threshold": choose_threshold(real_curve, synthetic_curve),
        "train_s": statistics.mean(f["train_s"] for f in folds),
    }


def print_summary(s: dict[str, Any], replies: int) -> None:
    agree = s["department_agreement"]
    print(
        f"\n{'metric':<46} value\n"
        f"{'real test messages (pooled over folds)':<46} {s['test_rows']}\n"
        f"{'level-1 accuracy':<46} {s['level1_accuracy']:.4f}\n"
        f"{'level-1 macro-F1 (pooled / fold mean)':<46} {s['level1_macro_f1']:.4f} / "
        f"{s['level1_macro_f1_fold_mean']:.4f}\n"
        f"{'auto-dispatch threshold':<46} {s['threshold']:.2f}\n"
        f"{'auto-dispatch coverage':<46} {s['auto_dispatch_coverage']:.4f}\n"
        f"{'auto-dispatch precision (level 1; 95% low)':<46} "
        f"{s['auto_dispatch_precision']:.4f} ({s['auto_dispatch_precision_lower95']:.4f})\n"
        f"{'level-1 ECE (root model probability)':<46} {s['level1_ece']:.4f}\n"
        f"{'unseen words: tokens / distinct':<46} {s['unseen_token_share']:.4f} / "
        f"{s['unseen_word_share']:.4f}\n"
        f"{f'department agreement, {replies} replies: routed':<46} {agree['routed']:.4f}\n"
        f"{'  catalogue lead of the predicted category':<46} {agree['catalogue_lead']:.4f}\n"
        f"{'  department model top-1':<46} {agree['model']:.4f}\n"
        f"{'synthetic held-out: leaf / routed department':<46} "
        f"{s['synthetic_leaf_accuracy']:.4f} / {s['synthetic_department_accuracy']:.4f}\n"
        f"{'training time per fold (s)':<46} {s['train_s']:.0f}"
    )
    for key, title in (
        (
            "curve_leaf_confidence",
            "suggestion.confidence (leaf path); precision = level-1 group right, real held-out "
            "messages",
        ),
        (
            "curve_synthetic_leaf",
            "suggestion.confidence; precision = leaf right, "
            f"{s['synthetic_test_rows']} synthetic held-out appeals",
        ),
        (
            "curve_synthetic_department",
            "suggestion.confidence; precision = routed department right (the generator's handler "
            f"or lead), {s['synthetic_test_rows']} synthetic held-out appeals",
        ),
        (
            "curve_level1_confidence",
            "the level-1 probability (root model); precision = level-1 right, real messages",
        ),
        (
            "curve_department_confidence_real",
            "RouteDecision.department_confidence, as route() compares it; precision = level-1 "
            "right, real messages",
        ),
        (
            "curve_department_confidence_synthetic",
            "RouteDecision.department_confidence; precision = routed department right, synthetic",
        ),
    ):
        print(f"\nprecision / coverage by threshold on {title}:")
        print(f"  {'threshold':>9} {'coverage':>9} {'precision':>9} {'95% low':>8} {'count':>6}")
        for p in s[key]:
            print(
                f"  {p['threshold']:>9.2f} {p['coverage']:>9.4f} {p['precision']:>9.4f} "
                f"{p['precision_lower95']:>8.4f} {p['count']:>6}"
            )
    chosen = s["chosen_threshold"]
    print(
        "\nlowest threshold with precision >= 0.95 on both curves of department_confidence: "
        + ("none" if chosen is None else f"{chosen:.2f}")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5, help="k of the k-fold split (default 5)")
    parser.add_argument(
        "--synthetic-count", type=int, help="synthetic appeals (default: the default model's)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one fold only, 10,000 synthetic appeals by default"
    )
    parser.add_argument("--no-real", action="store_true", help="train on the synthetic corpus only")
    parser.add_argument("--threshold", type=float, help="auto-dispatch threshold (default: config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--params", default="{}", help="JSON of HotlineClassifier parameters")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    args = parser.parse_args(argv)
    from sklearn.model_selection import StratifiedKFold

    from fixtures import real
    from training.default_model import DEFAULT_SYNTHETIC_COUNT, synthetic_training_set

    count = args.synthetic_count or (10_000 if args.quick else DEFAULT_SYNTHETIC_COUNT)
    threshold = default_threshold() if args.threshold is None else args.threshold
    messages, titles = real.labelled_messages(), real.labelled_titles()
    replies = [m for m in real.reply_messages() if m.department_code]
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {len(messages.texts)} "
        f"real messages, {len(titles.texts)} titles, {len(replies)} replies naming a department; "
        f"{count} synthetic appeals; {'no real rows' if args.no_real else 'real + synthetic'}",
        flush=True,
    )
    synthetic = synthetic_training_set(count)
    from fixtures.generator import generate_appeals

    synthetic_test = list(generate_appeals(2000 if args.quick else 5000, seed=args.seed + 777))
    splits = list(
        StratifiedKFold(args.folds, shuffle=True, random_state=args.seed).split(
            messages.texts, messages.labels
        )
    )
    if args.quick:
        splits = splits[:1]
    folds = [
        run_fold(
            k,
            train_idx,
            test_idx,
            synthetic=synthetic,
            messages=messages,
            titles=titles,
            replies=replies,
            synthetic_test=synthetic_test,
            use_real=not args.no_real,
            seed=args.seed,
            params=json.loads(args.params),
        )
        for k, (train_idx, test_idx) in enumerate(splits)
    ]
    summary = summarize(folds, threshold)
    print_summary(summary, len(replies))
    if args.json:
        for f in folds:
            f.pop("rows")
            f.pop("synthetic_rows")
        out = {"args": vars(args) | {"json": str(args.json)}, "summary": summary, "folds": folds}
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
