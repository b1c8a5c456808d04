"""Classifier benchmark: this pipeline beside a plain jieba + TF-IDF + LinearSVC baseline and
fastText, on the same splits, in one run.

    python -m benchmarks.classifier            # real data 5-fold + demo corpus 20k/5k
    python -m benchmarks.classifier --small    # CI-sized (< 1 minute on an idle 2-core machine)
    python -m benchmarks.classifier --scale 200000 --scale-only   # training time, CPU, peak memory
    python -m benchmarks.classifier --scale 50000 --scale-only --params '{"nb_weighting": false}'

Hyperparameters of every model are fixed before the run (ours: the library defaults, chosen by
3-fold CV inside the training part of the first outer fold; baseline and fastText: their usual
settings); nothing is tuned on test folds. fastText is a benchmark-only dependency
(`pip install fasttext-wheel`); without it its rows are left out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# --- models under comparison ------------------------------------------------------------------


def _jieba_cut(text: str) -> list[str]:
    import jieba

    return jieba.lcut(text)


class Baseline:
    """Plain jieba + TF-IDF (word 1-2 grams) + LinearSVC, the figure the data README quotes."""

    name = "baseline (jieba+tfidf+svc)"

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> Baseline:
        import jieba
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC

        jieba.setLogLevel(60)
        self.vec = TfidfVectorizer(
            tokenizer=_jieba_cut,
            token_pattern=None,
            ngram_range=(1, 2),
            sublinear_tf=True,
            min_df=2,
            lowercase=False,
        )
        self.svc = LinearSVC(C=1.0).fit(self.vec.fit_transform(texts), labels)
        return self

    def topk(self, texts: Sequence[str], k: int) -> tuple[list[list[str]], list[float] | None]:
        scores = self.svc.decision_function(self.vec.transform(texts))
        order = np.argsort(-scores, axis=1)[:, :k]
        return [[str(self.svc.classes_[j]) for j in row] for row in order], None

    def size(self) -> int:
        import pickle

        return len(pickle.dumps((self.vec, self.svc)))


class FastText:
    """fastText supervised on jieba-segmented text (word bigrams, 50 epochs, 200k buckets)."""

    name = "fastText"

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> FastText:
        import fasttext
        import jieba

        jieba.setLogLevel(60)
        self._cut = lambda t: " ".join(w for w in jieba.lcut(t.replace("\n", " ")) if w.strip())
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as fh:
            for text, label in zip(texts, labels, strict=True):
                fh.write(f"__label__{label.replace(' ', '_')} {self._cut(text)}\n")
            path = fh.name
        try:
            self.model = fasttext.train_supervised(
                input=path,
                epoch=50,
                lr=0.5,
                wordNgrams=2,
                dim=100,
                bucket=200_000,
                minCount=1,
                verbose=0,
                thread=1,
            )
        finally:
            os.unlink(path)
        return self

    def topk(self, texts: Sequence[str], k: int) -> tuple[list[list[str]], list[float]]:
        labels, probs = self.model.predict([self._cut(t) for t in texts], k=k)
        return [[lab.removeprefix("__label__") for lab in row] for row in labels], [
            float(p[0]) for p in probs
        ]

    def size(self) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.bin"
            self.model.save_model(str(path))
            return path.stat().st_size


class Ours:
    def __init__(self, **params: Any) -> None:
        self.params = params
        extra = ",".join(f"{k}={v}" for k, v in params.items())
        self.name = "hotline-router" + (f" ({extra})" if extra else "")

    def fit(
        self, texts: Sequence[str], labels: Sequence[str], departments: Sequence[str] | None = None
    ) -> Ours:
        from classifier import HotlineClassifier

        self.model = HotlineClassifier(random_state=0, **self.params).fit(
            texts, labels, departments
        )
        return self

    def topk(self, texts: Sequence[str], k: int) -> tuple[list[list[str]], list[float]]:
        sugg = self.model.suggest_batch(texts, k=k, explain=False)
        self.last = sugg
        return [[p for p, _ in s.alternatives] for s in sugg], [s.confidence for s in sugg]

    def size(self) -> int:
        from classifier import save_model

        with tempfile.TemporaryDirectory() as tmp:
            save_model(self.model, tmp)
            return (Path(tmp) / "model.joblib").stat().st_size


def fasttext_available() -> bool:
    try:
        import fasttext  # noqa: F401
    except ImportError:
        return False
    return True


# --- measurements ------------------------------------------------------------------------------


def cpu_speed_probe() -> float:
    """Seconds for a fixed pure-Python loop: compare runs made on loaded and idle machines."""
    start = time.perf_counter()
    sum(range(10_000_000))
    return time.perf_counter() - start


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro"))


def ece(conf: Sequence[float] | None, hits: Sequence[bool]) -> float | None:
    from classifier.calibration import expected_calibration_error

    return None if conf is None else expected_calibration_error(conf, hits)


def latency(predict_one: Callable[[str], Any], texts: Sequence[str], n: int) -> dict[str, float]:
    for text in texts[:20]:
        predict_one(text)
    wall, cpu = [], []
    for text in texts[:n]:
        w, c = time.perf_counter(), time.thread_time()
        predict_one(text)
        wall.append(time.perf_counter() - w)
        cpu.append(time.thread_time() - c)
    return {
        "p50_ms": 1e3 * float(np.percentile(wall, 50)),
        "p99_ms": 1e3 * float(np.percentile(wall, 99)),
        "cpu_p50_ms": 1e3 * float(np.percentile(cpu, 50)),
        "cpu_p99_ms": 1e3 * float(np.percentile(cpu, 99)),
    }


def saved_model_latency(model_dir: Path, n: int) -> dict[str, Any]:
    """Single-appeal latency of a saved model (say the shipped default, `var/models`) on the
    real messages (`fixtures.real`), as the API calls it: `suggest_batch` of one text, top 5,
    with explanations."""
    from classifier import load_model
    from fixtures import real

    model = load_model(model_dir)
    texts = list(real.labelled_messages().texts)[: max(n, 20) + 20]
    lengths = [len(t) for t in texts[:n]]
    result: dict[str, Any] = latency(lambda t: model.suggest_batch([t], k=5), texts, n)
    result.update(model_dir=str(model_dir), appeals=min(n, len(texts)))
    result["chars_p50"] = float(np.percentile(lengths, 50))
    result["chars_p99"] = float(np.percentile(lengths, 99))
    return result


def throughput(
    predict_many: Callable[[Sequence[str]], Any], texts: Sequence[str]
) -> dict[str, float]:
    w, c = time.perf_counter(), time.process_time()
    predict_many(texts)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    return {"per_s": len(texts) / wall, "cpu_per_s": len(texts) / cpu}


def long_appeals(n: int) -> list[str]:
    """~400-character appeals: real messages when present, else joined demo appeals."""
    path = SHARED_DATA / "tipdm2020_messages_l1.csv"
    if path.is_file():
        from training.datasets import load_dataset

        texts = load_dataset([path], text_column="text").texts
        texts = [t[:400] for t in texts if len(t) >= 400]
        if len(texts) >= n:
            return texts[:n]
    from fixtures.generator import generate_appeals

    rows = [r["text"] for r in generate_appeals(n * 6, seed=99)]
    out, buf = [], ""
    for text in rows:
        buf += text
        if len(buf) >= 400:
            out.append(buf[:400])
            buf = ""
    return out[:n]


def pick_models(only: set[str] | None, nb_variant: bool = False) -> list[Callable[[], Any]]:
    """The models to run, in table order; `only` filters by the names of `--models`."""
    makers: list[tuple[str, Callable[[], Any]]] = [("baseline", Baseline)]
    if fasttext_available():
        makers.append(("fasttext", FastText))
    makers.append(("ours", Ours))
    if nb_variant:  # the library default uses NB weighting; show what it adds
        makers.append(("ours-no-nb", lambda: Ours(nb_weighting=False)))
    return [make for key, make in makers if only is None or key in only]


# --- sections ---------------------------------------------------------------------------------


def real_data(small: bool, only: set[str] | None = None) -> list[dict[str, Any]]:
    from sklearn.model_selection import StratifiedKFold

    from training.datasets import load_dataset

    results = []
    for name, file, column in (
        ("messages", "tipdm2020_messages_l1.csv", "text"),
        ("titles", "tipdm2020_titles_l1.csv", "title"),
    ):
        path = SHARED_DATA / file
        if not path.is_file():
            print(f"(skipping real data: {path} not found)", file=sys.stderr)
            continue
        ds = load_dataset([path], text_column=column, label_column="label_l1")
        texts, labels = ds.texts, ds.labels
        assert labels is not None
        folds = 5
        if small:
            texts, labels, folds = texts[::6], labels[::6], 2
        y = np.array(labels)
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=0).split(texts, y))
        makers = pick_models(only, nb_variant=name == "messages")
        for make in makers:
            f1s, accs, eces, secs = [], [], [], []
            for train, test in splits:
                model = make()
                start = time.perf_counter()
                model.fit([texts[i] for i in train], [labels[i] for i in train])
                secs.append(time.perf_counter() - start)
                top, conf = model.topk([texts[i] for i in test], 1)
                pred = [row[0] for row in top]
                truth = [labels[i] for i in test]
                hits = [p == t for p, t in zip(pred, truth, strict=True)]
                f1s.append(macro_f1(truth, pred))
                accs.append(float(np.mean(hits)))
                eces.append(ece(conf, hits))
            results.append(
                {
                    "data": name,
                    "model": model.name,
                    "folds": folds,
                    "rows": len(texts),
                    "macro_f1": statistics.mean(f1s),
                    "macro_f1_std": statistics.pstdev(f1s),
                    "fold_macro_f1": [round(f, 4) for f in f1s],
                    "accuracy": statistics.mean(accs),
                    "ece": None if eces[0] is None else statistics.mean(eces),
                    "train_s": statistics.mean(secs),
                }
            )
            print_row_real(results[-1])
    return results


def demo_corpus(
    n_train: int, n_test: int, n_latency: int, only: set[str] | None = None
) -> list[dict[str, Any]]:
    from fixtures.generator import generate_appeals

    train = list(generate_appeals(n_train, seed=1))
    test = list(generate_appeals(n_test, seed=2))
    texts = [r["text"] for r in train]
    leaves = [r["category_path"] for r in train]
    depts = [r["department_code"] for r in train]
    test_texts = [r["text"] for r in test]
    truth = [r["category_path"] for r in test]
    appeals400 = long_appeals(max(n_latency, 200))
    results = []
    for make in pick_models(only):
        model = make()
        start = time.perf_counter()
        cpu0 = time.process_time()
        if isinstance(model, Ours):
            model.fit(texts, leaves, depts)
        else:
            model.fit(texts, leaves)
        train_s = time.perf_counter() - start
        train_cpu = time.process_time() - cpu0
        top, conf = model.topk(test_texts, 3)
        hits = [row[0] == t for row, t in zip(top, truth, strict=True)]
        row: dict[str, Any] = {
            "model": model.name,
            "train_rows": n_train,
            "classes": len(set(leaves)),
            "leaf_top1": float(np.mean(hits)),
            "leaf_top3": float(np.mean([t in r for r, t in zip(top, truth, strict=True)])),
            "level1": float(
                np.mean(
                    [r[0].split("/")[0] == t.split("/")[0] for r, t in zip(top, truth, strict=True)]
                )
            ),
            "leaf_macro_f1": macro_f1(truth, [r[0] for r in top]),
            "ece": ece(conf, hits),
            "department": None,
            "train_s": train_s,
            "train_cpu_s": train_cpu,
            "size_mb": model.size() / 1e6,
        }
        if isinstance(model, Ours):
            gold = [r["department_code"] for r in test]
            got = [s.department[0] if s.department else None for s in model.last]
            row["department"] = float(np.mean([a == b for a, b in zip(got, gold, strict=True)]))
            clf = model.model
            row.update(latency(clf.suggest, appeals400, n_latency))  # normalise ... explain
            row.update(throughput(clf.suggest_batch, appeals400))
            no_terms = throughput(lambda ts, c=clf: c.suggest_batch(ts, explain=False), appeals400)
            row["cpu_per_s_no_terms"] = no_terms["cpu_per_s"]
        else:
            row.update(latency(lambda t, m=model: m.topk([t], 5), appeals400, n_latency))
            row.update(throughput(lambda ts, m=model: m.topk(ts, 5), appeals400))
        results.append(row)
        print_row_demo(row)
    return results


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scale_child(n: int, params: dict[str, Any]) -> None:
    """Run in a subprocess so that its peak memory is its own."""
    from classifier import HotlineClassifier
    from fixtures.generator import USER_DICT_PATH, generate_appeals

    start = time.perf_counter()
    rows = list(generate_appeals(n, seed=5))
    gen_s = time.perf_counter() - start
    texts = [r["text"] for r in rows]
    labels = [r["category_path"] for r in rows]
    depts = [r["department_code"] for r in rows]
    del rows
    params = {"n_jobs": -1, **params}
    model = HotlineClassifier(user_dict=str(USER_DICT_PATH), random_state=0, **params)
    stages: dict[str, tuple[float, float]] = {}
    start = time.perf_counter()
    cpu0, children0 = time.process_time(), _children_cpu()

    def progress(stage: str, fraction: float) -> None:
        if stage not in stages:
            cpu = time.process_time() - cpu0 + _children_cpu() - children0
            stages[stage] = (round(time.perf_counter() - start, 1), round(cpu, 1))

    model.fit(texts, labels, depts, progress=progress)
    train_s = time.perf_counter() - start
    try:  # let the feature worker processes exit, so that their CPU time is counted
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    except Exception:  # the CPU figure is only less complete without it
        pass
    result = {
        "rows": n,
        "classes": len(model.classes_),
        "features": model.features_.n_features,
        "params": params,
        "generate_s": gen_s,
        "train_s": train_s,
        "train_cpu_s": time.process_time() - cpu0 + _children_cpu() - children0,
        "stage_start_wall_cpu_s": stages,
        "load_average": os.getloadavg(),
        "peak_rss_mb_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_mb_workers": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }
    print(json.dumps(result))


def scale(n: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.classifier",
            "--scale-child",
            str(n),
            "--params",
            json.dumps(params or {}),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"scale run failed: {proc.stderr.strip().splitlines()[-1:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"scale: {result['rows']} appeals x {result['classes']} classes, "
        f"{result['features']} features: train {result['train_s']:.0f}s wall, "
        f"{result['train_cpu_s']:.0f}s CPU (all cores, feature workers included; "
        f"load {result['load_average'][0]:.1f}), peak RSS {result['peak_rss_mb_self']:.0f} MB "
        f"(feature workers {result['peak_rss_mb_workers']:.0f} MB)"
    )
    return result


# --- printing ---------------------------------------------------------------------------------


def _f(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def print_row_real(r: dict[str, Any]) -> None:
    print(
        f"  {r['data']:<9} {r['model']:<27} macro-F1 {r['macro_f1']:.4f} ±{r['macro_f1_std']:.4f}"
        f"  acc {r['accuracy']:.4f}  ECE {_f(r['ece'], '.4f')}  train {r['train_s']:.1f}s/fold",
        flush=True,
    )


def print_row_demo(r: dict[str, Any]) -> None:
    print(
        f"  {r['model']:<27} top1 {r['leaf_top1']:.3f} top3 {r['leaf_top3']:.3f} "
        f"L1 {r['level1']:.3f} dept {_f(r['department'], '.3f')} ECE {_f(r['ece'], '.3f')} "
        f"train {r['train_s']:.1f}s  p50 {r['p50_ms']:.2f}ms p99 {r['p99_ms']:.2f}ms "
        f"(cpu p99 {r['cpu_p99_ms']:.2f}ms)  {r['per_s']:.0f}/s (cpu {r['cpu_per_s']:.0f}/s) "
        f"size {r['size_mb']:.1f}MB",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI-sized run")
    parser.add_argument("--scale", type=int, default=0, help="also train on N demo appeals")
    parser.add_argument("--scale-only", action="store_true", help="only the --scale run")
    parser.add_argument("--skip-real", action="store_true", help="leave out the real data")
    parser.add_argument("--skip-demo", action="store_true", help="leave out the demo corpus")
    parser.add_argument("--json", type=Path, help="write all results to this file")
    parser.add_argument(
        "--models", help="comma-separated subset of baseline,fasttext,ours,ours-no-nb (default all)"
    )
    parser.add_argument(
        "--params", default="{}", help="JSON of HotlineClassifier parameters for --scale"
    )
    parser.add_argument(
        "--latency-model",
        type=Path,
        help="only measure the single-appeal latency of this saved model on real messages",
    )
    parser.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.latency_model:
        r = saved_model_latency(args.latency_model, 2000)
        print(
            f"{r['model_dir']}: {r['appeals']} real messages (chars p50 {r['chars_p50']:.0f}, "
            f"p99 {r['chars_p99']:.0f}), load {os.getloadavg()[0]:.1f}\n"
            f"  single appeal: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms "
            f"(cpu p50 {r['cpu_p50_ms']:.2f} ms, p99 {r['cpu_p99_ms']:.2f} ms)"
        )
        return
    if args.scale_child:
        scale_child(args.scale_child, json.loads(args.params))
        return
    only = set(args.models.split(",")) if args.models else None
    out: dict[str, Any] = {
        "cpu_probe_s": cpu_speed_probe(),
        "load_average": os.getloadavg(),
        "fasttext": fasttext_available(),
    }
    print(
        f"machine: {os.cpu_count()} cores, load {out['load_average'][0]:.1f}, "
        f"probe {out['cpu_probe_s']:.2f}s (sum(range(1e7)); ~0.2s on an idle core)"
    )
    if not out["fasttext"]:
        print("fastText not installed (pip install fasttext-wheel): its rows are left out")
    if not args.scale_only:
        if not args.skip_real:
            print("real data, first-level classes, stratified k-fold:")
            out["real_data"] = real_data(args.small, only)
        if not args.skip_demo:
            n_train, n_test, n_lat = (3000, 1000, 200) if args.small else (20000, 5000, 1000)
            print(f"demo corpus: {n_train} train / {n_test} test appeals, leaf categories:")
            out["demo"] = demo_corpus(n_train, n_test, n_lat, only)
    if args.scale:
        out["scale"] = scale(args.scale, json.loads(args.params))
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
