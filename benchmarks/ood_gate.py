"""The out-of-distribution gate (`classifier.ood`) measured: feature distributions on the real
messages and on junk and English samples, and the share of each set every flag catches.

    python -m benchmarks.ood_gate                     # real data, both vocabularies (~3 min)
    python -m benchmarks.ood_gate --demo-rows 20000   # a smaller demo corpus

Real sets: the TipDM 2020 files of ../shared/data as published (labelled message texts and
titles, messages with replies and their titles, unlabelled messages and their titles), or the
normalised copies in fixtures/data/real when ../shared is absent. Junk sets are made here:
English (hand-written appeals and sentences of the Python standard library's docstrings),
greetings and test words, emoji, whitespace and punctuation, digits, URLs, repeated characters
and words, keyboard mashing. Two legitimate edge sets: mixed Chinese and English appeals (must
pass) and short Chinese phone transcripts (flagged `too_short` only, never refused).

The known-word share needs a model's vocabulary. Two are measured: the demo model's (the seeded
synthetic corpus `make run` trains on, `--demo-rows` rows) and a real-data one, 2-fold: each half
of the labelled messages and titles is judged by the vocabulary of the other half; the other real
sets by the first half's. Vocabulary models are fitted with cheap node settings (level 1 only,
no stacking, no calibration): the vocabulary depends only on the text pipeline and the feature
settings, which are the defaults.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from classifier import HotlineClassifier
from classifier.ood import FLAGS, OutOfDistribution, assess, measure

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO_SEED = 12345  # service.bootstrap.DEMO_SEED: the corpus `make run` trains on

# --- real sets --------------------------------------------------------------------------------


def _column(name: str, column: str) -> list[str]:
    with (SHARED_DATA / name).open(encoding="utf-8", newline="") as fh:
        return [row[column] for row in csv.DictReader(fh)]


def real_sets() -> dict[str, tuple[list[str], list[str] | None]]:
    """name -> (texts, level-1 labels or None)."""
    if (SHARED_DATA / "tipdm2020_messages_l1.csv").is_file():
        unlabeled = ("tipdm2020_messages_unlabeled.csv", "tipdm2020_testphase_unlabeled.csv")
        return {
            "messages": (
                _column("tipdm2020_messages_l1.csv", "text"),
                _column("tipdm2020_messages_l1.csv", "label_l1"),
            ),
            "titles": (
                _column("tipdm2020_titles_l1.csv", "title"),
                _column("tipdm2020_titles_l1.csv", "label_l1"),
            ),
            "reply messages": (_column("tipdm2020_messages_with_replies.csv", "detail"), None),
            "reply titles": (_column("tipdm2020_messages_with_replies.csv", "title"), None),
            "unlabelled": ([t for f in unlabeled for t in _column(f, "detail")], None),
            "unlabelled titles": ([t for f in unlabeled for t in _column(f, "title")], None),
        }
    from fixtures import real

    messages, titles = real.labelled_messages(), real.labelled_titles()
    replies = real.reply_messages()
    return {
        "messages": (messages.texts, messages.labels),
        "titles": (titles.texts, titles.labels),
        "reply messages": ([r.detail for r in replies], None),
        "reply titles": ([r.title for r in replies], None),
        "unlabelled": (real.unlabeled_texts(), None),
    }


# --- junk and edge sets -----------------------------------------------------------------------

ENGLISH_APPEALS = [
    "The streetlight outside my building has been broken for two weeks, please fix it.",
    "There is a lot of noise from the construction site next door every night after 11pm.",
    "My landlord refuses to return my deposit. What can I do?",
    "The bus number 12 never comes on time in the morning.",
    "Someone dumped garbage next to the river near our community.",
    "I want to complain about the restaurant downstairs, the smoke comes into my apartment.",
    "Hello, I would like to ask how to apply for a residence permit.",
    "The water supply in our building has been cut off since yesterday without notice.",
    "Please help, my employer has not paid my salary for three months.",
    "There is a big pothole on the main road, cars keep hitting it.",
    "Why is the traffic light at the crossing always red for so long?",
    "Our neighbour keeps a dog that barks all night.",
    "The elevator in building 3 is broken again and elderly people cannot go out.",
    "I was overcharged by a taxi driver at the railway station.",
    "The school charges extra fees that are not allowed.",
    "Where can I get my social security card replaced?",
    "The park toilets are dirty and nobody cleans them.",
    "Illegal parking blocks the fire lane in our compound.",
    "The heating in our flat does not work and it is freezing.",
    "I would like to report a fake product sold online.",
]
GREETINGS = [
    "hello", "Hello!", "hi", "HELLO WORLD", "test", "testing 123", "ok", "OK", "thanks",
    "good morning", "yes", "no", "help", "hey there", "asdf", "qwerty", "abc", "xyz", "lol",
    "hello hello hello",
]  # fmt: skip
MIXED_APPEALS = [
    "小区的WiFi信号太差，联通宽带经常断网，打客服10010也没人处理，希望尽快解决。",
    "我在某APP上买的iPhone是假货，商家拒绝退款，请有关部门处理。",
    "A3区万达广场的KTV每天晚上12点以后还很吵，严重影响休息。",
    "2路公交车GPS显示到站时间不准，经常等半个小时，希望改进。",
    "ETC卡在高速收费站无法使用，客服电话一直占线。",
    "单位没有给我缴纳五险一金，HR说试用期不交，这合理吗？",
    "小区门口的LED广告屏晚上太亮，照得卧室里睡不着。",
    "我们楼下新开的SPA会所涉嫌违规经营，请市场监管部门查一下。",
    "手机号在营业厅办理了携号转网，现在4G信号没有了，5G也用不了。",
    "网购的PM2.5口罩质量不合格，平台客服不处理，要求退款。",
]
SHORT_TRANSCRIPTS = [
    "路灯坏了",
    "停水了",
    "噪音扰民",
    "有人打架",
    "井盖丢了",
    "电梯坏了",
    "楼下漏水",
    "下水道堵了",
]
JAPANESE = [
    "駅前の街灯が二週間も壊れたままです。早く修理してください。",
    "隣の工事現場が毎晩うるさくて眠れません。",
    "すみません、住民票の取り方を教えてください。",
    "バスが時間通りに来ないので困っています。",
    "マンションのエレベーターがまた故障しました。",
]
_STDLIB = (
    *("argparse", "csv", "json", "logging", "pathlib", "subprocess", "threading", "unittest"),
    *("collections", "functools", "itertools", "datetime", "decimal", "heapq", "email"),
)


def english_sentences(limit: int = 400) -> list[str]:
    """Plain English sentences of 20-300 characters from standard-library docstrings."""
    out: list[str] = []
    for name in _STDLIB:
        module = importlib.import_module(name)
        docs = [inspect.getdoc(module) or ""]
        docs += [inspect.getdoc(v) or "" for k, v in vars(module).items() if not k.startswith("_")]
        for doc in docs:
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(doc.split())):
                if 20 <= len(sentence) <= 300 and re.fullmatch(r"[A-Za-z ,.;:'()!?-]+", sentence):
                    out.append(sentence)
    unique = sorted(set(out))
    random.Random(0).shuffle(unique)
    return unique[:limit]


def junk_sets(rng: random.Random) -> dict[str, list[str]]:
    emoji = [chr(c) for c in (*range(0x1F600, 0x1F650), *range(0x1F300, 0x1F3F0))]
    # rarely used characters (the CJK block read in steps), as from a mistyped input method
    rare = [chr(c) for c in range(0x4E00 + 7, 0x9FA5, 97)]
    common = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
    rows = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    mash = []
    for _ in range(30):
        row = rng.choice(rows)
        start = rng.randrange(len(row) - 4)
        piece = row[start : start + rng.randint(4, len(row) - start)]
        mash.append(piece * rng.randint(1, 3))
    return {
        "english appeals": ENGLISH_APPEALS,
        "english sentences": english_sentences(),
        "greetings, test words": GREETINGS,
        "emoji only": ["".join(rng.choices(emoji, k=rng.randint(1, 12))) for _ in range(30)],
        "whitespace, punctuation": [
            " ",
            "\n",
            "\t\t",
            "\u3000\u3000",
            "   \n  ",
            "。。。",
            "？？？",
            "!!!",
            "……",
            "～～",
        ],
        "digits only": [str(rng.randrange(10 ** rng.randint(2, 18))) for _ in range(30)]
        + ["13800138000", "110", "12345", "2024-05-01", "0731-88888888"],
        "urls only": [
            "https://example.com",
            "www.baidu.com",
            "http://weixin.qq.com/r/abc123",
            "https://mp.weixin.qq.com/s/XyZ?from=timeline",
            "baidu.com/s?wd=12345",
        ],
        "repeated characters": [rng.choice(common) * rng.randint(4, 30) for _ in range(30)],
        "repeated words": [
            "".join(rng.sample(common, rng.randint(2, 3))) * rng.randint(3, 8) for _ in range(30)
        ]
        + ["测试测试测试", "投诉投诉投诉投诉", "你好你好你好你好", "哈哈哈哈哈哈"],
        "keyboard mashing": [*mash, "asdfghjkl", "qwertyuiop", "zxcvbnm", "sdfsdfsdf", "jkljkljkl"],
        "random characters": ["".join(rng.choices(rare, k=rng.randint(8, 40))) for _ in range(30)],
        "japanese": JAPANESE,
    }


# --- measuring --------------------------------------------------------------------------------


def vocabulary_model(texts: Sequence[str], labels: Sequence[str]) -> HotlineClassifier:
    from training.workflow import default_user_dict

    model = HotlineClassifier(
        user_dict=default_user_dict(),
        max_depth=1,
        stacking=False,
        nb_weighting=False,
        calibration_fraction=0.0,
        refit=False,
        random_state=0,
    )
    return model.fit(list(texts), [str(label) for label in labels])


Judge = Callable[[Sequence[str]], list[OutOfDistribution]]


def judge_with(model: HotlineClassifier | None) -> Judge:
    def judge(texts: Sequence[str]) -> list[OutOfDistribution]:
        if model is None:
            return [assess(t) for t in texts]
        vocabulary = model.features_.word_id
        return [assess(t, model._tokens(t)[0], vocabulary) for t in texts]

    return judge


def _pct(x: float) -> str:
    return f"{100 * x:6.2f}%"


def summarise(name: str, verdicts: list[OutOfDistribution]) -> str:
    n = len(verdicts)
    flagged = sum(1 for v in verdicts if v.flags) / n
    counts = Counter(flag for v in verdicts for flag in v.flags)
    refused = sum(1 for v in verdicts if "no_chinese" in v.flags) / n
    top = ", ".join(f"{f} {_pct(counts[f] / n).strip()}" for f in FLAGS if counts[f])
    return f"  {name:<26} {n:>6} flagged {_pct(flagged)} refused {_pct(refused)}  {top}"


def quantiles(values: Sequence[float], qs: Sequence[float]) -> str:
    arr = np.asarray(values, dtype=float)
    return " ".join(f"{q:g}:{np.quantile(arr, q):.3g}" for q in qs)


def below(values: Sequence[float], cut: float) -> float:
    return float(np.mean(np.asarray(values, dtype=float) < cut)) if len(values) else 0.0


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-rows", type=int, default=60_000)
    args = parser.parse_args(argv)
    rng = random.Random(0)

    reals = real_sets()
    junk = junk_sets(rng)
    edges = {"mixed zh/en appeals": MIXED_APPEALS, "short transcripts": SHORT_TRANSCRIPTS}
    print(f"real sets: {', '.join(f'{k} {len(v[0])}' for k, v in reals.items())}")

    # Surface features (no model).
    qs = (0, 0.001, 0.005, 0.01, 0.05, 0.5)
    print("\nSurface features of the real sets (quantiles):")
    all_real_shapes = []
    for name, (texts, _) in reals.items():
        shapes = [measure(t) for t in texts]
        all_real_shapes.extend(shapes)
        print(f"  {name}")
        print(f"    chinese characters  {quantiles([s.cjk for s in shapes], qs)}")
        print(f"    chinese share       {quantiles([s.cjk_share for s in shapes], qs)}")
        head = [s.distinct_share for s in shapes if s.head_letters >= 4]
        print(f"    distinct share      {quantiles(head, qs)}")
    print("\nCut-off scan on all real texts and titles (share flagged):")
    cjk = [s.cjk for s in all_real_shapes]
    share = [s.cjk_share for s in all_real_shapes if s.cjk]
    distinct = [s.distinct_share for s in all_real_shapes if s.head_letters >= 4]
    titles = [
        s.cjk
        for name in ("titles", "reply titles", "unlabelled titles")
        if name in reals
        for s in (measure(t) for t in reals[name][0])
    ]
    scans: list[tuple[str, Sequence[float], Sequence[float]]] = [
        ("chinese characters < n (titles)", titles, range(2, 11)),
        ("chinese characters < n (all)", cjk, range(2, 11)),
        ("chinese share < c", share, (0.2, 0.3, 0.4, 0.5, 0.6)),
        ("distinct share < c", distinct, (0.3, 0.4, 0.5, 0.6)),
    ]
    for label, values, cuts in scans:
        print(f"  {label:<34}" + "  ".join(f"{c:g}:{_pct(below(values, c)).strip()}" for c in cuts))
    mashing = sum(s.mash_run > 0 for s in all_real_shapes) / len(all_real_shapes)
    print(f"  {'keyboard mashing':<34}{_pct(mashing).strip()}")

    # Vocabularies.
    started = time.perf_counter()
    from fixtures.generator import generate_appeals

    demo = list(generate_appeals(args.demo_rows, DEMO_SEED))
    demo_model = vocabulary_model([r["text"] for r in demo], [r["category_code"][:2] for r in demo])
    seconds = time.perf_counter() - started
    words = len(demo_model.features_.word_id)
    print(f"\ndemo vocabulary ({args.demo_rows} rows): {words} words, {seconds:.0f} s")
    started = time.perf_counter()
    labelled = [
        (t, y)
        for key in ("messages", "titles")
        for t, y in zip(reals[key][0], reals[key][1] or [], strict=True)
    ]
    halves = [labelled[0::2], labelled[1::2]]
    real_models = [vocabulary_model([t for t, _ in h], [y for _, y in h]) for h in halves]
    seconds = time.perf_counter() - started
    sizes = " / ".join(str(len(m.features_.word_id)) for m in real_models)
    print(f"real vocabularies (2 folds of {len(labelled)} texts): {sizes} words, {seconds:.0f} s")

    def real_verdicts(name: str, texts: list[str], vocab: str) -> list[OutOfDistribution]:
        if vocab == "demo":
            return judge_with(demo_model)(texts)
        if name in ("messages", "titles"):
            # position k of `texts` sits in half k % 2 of its own set: judge it by the other
            out: list[OutOfDistribution] = [None] * len(texts)  # type: ignore[list-item]
            for half in (0, 1):
                idx = list(range(half, len(texts), 2))
                judged = judge_with(real_models[1 - half])([texts[i] for i in idx])
                for i, v in zip(idx, judged, strict=True):
                    out[i] = v
            return out
        return judge_with(real_models[0])(texts)

    known_cuts = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
    for vocab in ("demo", "real"):
        print(f"\n=== vocabulary: {vocab} ===")
        real_all: list[OutOfDistribution] = []
        for name, (texts, _) in reals.items():
            verdicts = real_verdicts(name, texts, vocab)
            real_all.extend(verdicts)
            print(summarise(name, verdicts))
            print(f"    known share  {quantiles([v.known_share for v in verdicts], qs)}")
        print(summarise("ALL REAL", real_all))
        judge = judge_with(demo_model if vocab == "demo" else real_models[0])
        english: list[OutOfDistribution] = []
        for name, texts in {**junk, **edges}.items():
            verdicts = judge(texts)
            if name.startswith("english"):
                english.extend(verdicts)
            print(summarise(name, verdicts))
            if name in ("random characters", "japanese", "mixed zh/en appeals"):
                print(f"    known share  {quantiles([v.known_share for v in verdicts], qs)}")
        print("  known share < c (any number of words), real vs english:")
        for cut in known_cuts:
            real_below = below([v.known_share for v in real_all], cut)
            english_below = below([v.known_share for v in english], cut)
            print(f"    {cut:g}: real {_pct(real_below)}   english {_pct(english_below)}")

    # Cost of the gate per text (on top of the model's tokenisation, which it shares).
    sample = reals["messages"][0][:2000]
    vocabulary = demo_model.features_.word_id
    tokens = [demo_model._tokens(t)[0] for t in sample]
    started = time.perf_counter()
    for t, w in zip(sample, tokens, strict=True):
        assess(t, w, vocabulary)
    per = (time.perf_counter() - started) / len(sample)
    print(f"\ngate cost: {per * 1e6:.0f} us per real message (mean of {len(sample)})")


if __name__ == "__main__":
    main()
