"""Which department source is right more often on real appeals: catalogue lead, jurisdiction or
the learned department model.

    python -m benchmarks.department_sources [--model DIR] [--synthetic N] [--seed S]
                                            [--save DIR] [--audit N]

Ground truth: the real messages whose official reply names a body that maps to a catalogue code
(`fixtures.real.reply_messages()`, `department_code`, 373 rows: county and district bureaus as
their functional department, 街道/镇 as the street). A choice is right when it is that body or
its parent or child in `departments.csv` (a reply by 市水务局 is right for the 排水事务中心, a unit
of it).

The model is `--model DIR` (a saved model, e.g. the shipped default), or one trained here: the
seeded synthetic leaf corpus (`fixtures.generator`, with departments) and the real level-1
messages and titles, without any text that is also among the evaluated replies. Each source is
scored where it answers: precision (right / answered) and coverage (answered / rows); the model
also per probability band. The last rows compare the old fixed order (jurisdiction, model at
0.9, catalogue) with `router.routing.decide_department` under the measured `SourcePrecision`.

`--audit N` prints every leaf's lead, lead rule and assisting departments, the N leaves the model
predicts most often on all real messages first (the busiest leaves, checked by hand).

Measured with the defaults (training about 6-10 minutes on 2 busy cores): the lead of the
predicted leaf is right for 0.362 of the 373 rows, the model's department for 0.434; where they
disagree (184 rows) the model is right 52 times, the lead 25. The old fixed order gets 0.383
right, the measured policy 0.437. The policy's figures are measured and scored on the same rows
(five numbers, so little room to overfit, but not an independent holdout).
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from classifier import HotlineClassifier, Suggestion
from router.catalogue import Catalogue, Category, PlaceMatch, default_catalogue
from router.routing import (
    MEASURED_PRECISION,
    RoutingPolicy,
    SourcePrecision,
    decide_department,
)

MODEL_BANDS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
# Bands of the policy figures: coarse enough that each holds a few dozen contradictions.
POLICY_BANDS = (0.0, 0.5, 0.7)


@dataclass(frozen=True)
class Row:
    text: str
    truth: str
    category: Category | None
    place: PlaceMatch | None
    suggestion: Suggestion


def _key(text: str) -> str:
    return "".join(text.split())


def train(synthetic: int, seed: int, exclude: set[str]) -> HotlineClassifier:
    """The self-trained recipe: synthetic leaves with departments plus real level-1 texts."""
    from fixtures import real
    from fixtures.generator import generate_appeals
    from training.workflow import default_user_dict

    catalogue = default_catalogue()
    texts: list[str] = []
    paths: list[str] = []
    departments: list[str | None] = []
    for row in generate_appeals(synthetic, seed=seed):
        category = catalogue.category_or_raise(row["category_code"])
        texts.append(row["text"])
        paths.append(category.path_text)
        departments.append(row["department_code"] or None)
    for labelled in (real.labelled_messages(), real.labelled_titles()):
        for text, label in zip(labelled.texts, labelled.labels, strict=True):
            if _key(text) not in exclude:
                texts.append(text)
                paths.append(label)
                departments.append(None)
    model = HotlineClassifier(user_dict=default_user_dict(), random_state=seed)
    return model.fit(texts, paths, departments)


def same_body(catalogue: Catalogue, choice: str | None, truth: str) -> bool:
    """`choice` is the body that replied, or its parent or child (never the government root)."""
    if not choice:
        return False
    if choice == truth:
        return True
    a, b = catalogue.department(choice), catalogue.department(truth)
    if a is None or b is None:
        return False
    return (a.parent_code == truth and truth != "gov") or (b.parent_code == choice != "gov")


def _place(catalogue: Catalogue, text: str) -> PlaceMatch | None:
    return catalogue.resolve_place(text)


def _jurisdiction(row: Row, district: bool = False) -> str | None:
    """The street of the named place (or, with `district`, its district when no street)."""
    if row.place is None:
        return None
    return row.place.street_code or (row.place.district_code if district else None)


def _fixed_order(catalogue: Catalogue, row: Row) -> str | None:
    """The policy before the measurement: jurisdiction, then the model at 0.9, then the lead."""
    category = row.category
    if category is not None and category.handling_scope == "local" and _jurisdiction(row, True):
        return _jurisdiction(row, True)
    lead = category.lead_department if category is not None else None
    if row.suggestion.department is not None:
        code, p = row.suggestion.department
        if code != lead and p >= 0.9 and catalogue.department(code) is not None:
            return code
    return lead


def measure(
    catalogue: Catalogue, rows: Sequence[Row], figures: SourcePrecision
) -> list[tuple[str, int, int]]:
    """(source, answered, right) per source and policy."""
    out: list[tuple[str, int, int]] = []

    def score(name: str, choices: Sequence[str | None]) -> None:
        answered = [(c, r) for c, r in zip(choices, rows, strict=True) if c]
        right = sum(same_body(catalogue, c, r.truth) for c, r in answered)
        out.append((name, len(answered), right))

    leaf_lead = [
        r.category.lead_department if r.category is not None and r.category.is_leaf else None
        for r in rows
    ]
    score("catalogue: lead of a predicted leaf", leaf_lead)
    score(
        "catalogue: lead of the predicted node, any level",
        [catalogue.responsible_department(r.category.code) if r.category else None for r in rows],
    )
    score(
        "catalogue: lead of the predicted level 1",
        [
            catalogue.responsible_department(r.category.code[:2]) if r.category else None
            for r in rows
        ],
    )
    score("jurisdiction: street or district, any category", [_jurisdiction(r, True) for r in rows])
    score("jurisdiction: street named, any category", [_jurisdiction(r) for r in rows])
    local = [
        _jurisdiction(r)
        if r.category is not None and r.category.handling_scope == "local"
        else None
        for r in rows
    ]
    score("jurisdiction: street named, local category", local)
    for low in MODEL_BANDS:
        score(
            f"model: probability >= {low:.2f}",
            [
                r.suggestion.department[0]
                if r.suggestion.department and r.suggestion.department[1] >= low
                else None
                for r in rows
            ],
        )
    score(
        "model where it disagrees with the leaf lead",
        [
            r.suggestion.department[0]
            if r.suggestion.department and r.suggestion.department[0] != lead
            else None
            for r, lead in zip(rows, leaf_lead, strict=True)
        ],
    )
    score(
        "leaf lead where it disagrees with the model",
        [
            lead if r.suggestion.department and r.suggestion.department[0] != lead else None
            for r, lead in zip(rows, leaf_lead, strict=True)
        ],
    )
    score("policy: fixed order (before)", [_fixed_order(catalogue, r) for r in rows])
    for name, policy in (
        ("policy: router.routing.MEASURED_PRECISION (now)", RoutingPolicy()),
        (
            "policy: the figures measured in this run",
            RoutingPolicy(department_precision=figures, department_model_threshold=0.0),
        ),
    ):
        score(
            name,
            [
                decide_department(
                    catalogue=catalogue,
                    category=r.category,
                    place=r.place,
                    suggestion=r.suggestion,
                    policy=policy,
                )[0]
                for r in rows
            ],
        )
    return out


def head_to_head(
    catalogue: Catalogue, rows: Sequence[Row]
) -> tuple[list[tuple[str, int, int, int]], SourcePrecision]:
    """Where a source disagrees with the catalogue lead of the prediction, who is right.

    Returns the table rows (name, disagreements, source right, lead right) and the
    `SourcePrecision` these figures give: the catalogue's precision on every row some other
    source contradicts it, jurisdiction's and the model's (per probability band, the band
    holding the probability) where they contradict it. Only these rows decide anything.
    """
    table: list[tuple[str, int, int, int]] = []
    contradicted: set[int] = set()
    lead_right_total = 0

    def lead_of(r: Row) -> str | None:
        return catalogue.responsible_department(r.category.code) if r.category else None

    def compare(name: str, picks: list[tuple[int, str]]) -> float:
        nonlocal lead_right_total
        source_right = lead_right = 0
        for i, code in picks:
            source_right += same_body(catalogue, code, rows[i].truth)
            lead_right += same_body(catalogue, lead_of(rows[i]), rows[i].truth)
            contradicted.add(i)
        table.append((name, len(picks), source_right, lead_right))
        return source_right / len(picks) if picks else 0.0

    local = [
        (i, code)
        for i, r in enumerate(rows)
        if r.category is not None
        and r.category.handling_scope == "local"
        and (code := _jurisdiction(r))
        and not same_body(catalogue, code, lead_of(r) or "")
    ]
    jurisdiction = compare("jurisdiction (local category, street named)", local)
    bands: list[tuple[float, float]] = []
    for low, high in itertools.pairwise((*POLICY_BANDS, 1.01)):
        picks = [
            (i, r.suggestion.department[0])
            for i, r in enumerate(rows)
            if r.suggestion.department
            and low <= r.suggestion.department[1] < high
            and r.suggestion.department[0] != lead_of(r)
        ]
        precision = compare(f"model, probability in [{low:.2f}, {min(high, 1):.2f})", picks)
        if picks:
            bands.append((low, round(precision, 3)))
    lead_right_total = sum(
        same_body(catalogue, lead_of(rows[i]), rows[i].truth) for i in contradicted
    )
    catalogue_precision = lead_right_total / len(contradicted) if contradicted else 0.0
    figures = SourcePrecision(
        catalogue=round(catalogue_precision, 3),
        jurisdiction=round(jurisdiction, 3),
        model=tuple(bands),
    )
    return table, figures


def audit(catalogue: Catalogue, model: HotlineClassifier, busiest: int) -> None:
    from fixtures import real

    texts = list(real.labelled_messages().texts)
    texts += [f"{r['title']}\n{r['detail']}" for r in real.read_rows("messages_unlabeled")]
    texts += [f"{r['title']}\n{r['detail']}" for r in real.read_rows("testphase_unlabeled")]
    texts += [f"{m.title}\n{m.detail}" for m in real.reply_messages()]
    counts: Counter[str] = Counter()
    for start in range(0, len(texts), 512):
        for s in model.suggest_batch(texts[start : start + 512], k=5, explain=False):
            for label, _p in s.alternatives:
                category = catalogue.resolve_label(label)
                if category is not None and category.is_leaf:
                    counts[category.code] += 1
                    break
    leaves = sorted(catalogue.leaves(), key=lambda c: (-counts[c.code], c.code))
    print(f"{len(texts)} real messages; best leaf among each one's top 5 paths")
    print(f"{'rank':>4} {'hits':>5} {'code':<7} {'lead':<16} {'rule':<28} path / assisting")
    for rank, leaf in enumerate(leaves, start=1):
        mark = "*" if rank <= busiest else " "
        print(
            f"{rank:>4}{mark}{counts[leaf.code]:>5} {leaf.code:<7} {leaf.lead_department or '':<16}"
            f" {leaf.lead_rule:<28} {leaf.path_text} / {'|'.join(leaf.assisting_departments)}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", type=Path, help="a saved model directory (default: train one)")
    parser.add_argument("--synthetic", type=int, default=20_000, help="synthetic appeals")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--save", type=Path, help="save the trained model here")
    parser.add_argument("--audit", type=int, default=0, help="print the leaf audit, N busiest")
    args = parser.parse_args(argv)

    from classifier import load_model, save_model
    from fixtures import real

    catalogue = default_catalogue()
    replies = [m for m in real.reply_messages() if m.department_code]
    started = time.perf_counter()
    if args.model:
        model = load_model(args.model)
        source = str(args.model)
    else:
        exclude = {_key(m.detail) for m in replies} | {_key(m.title) for m in replies}
        model = train(args.synthetic, args.seed, exclude)
        source = f"trained here: {args.synthetic} synthetic (seed {args.seed}) + real level 1"
        if args.save:
            save_model(model, args.save)
    trained = time.perf_counter() - started
    texts = [f"{m.title}\n{m.detail}" for m in replies]
    suggestions = model.suggest_batch(texts, k=5, explain=False)
    rows = [
        Row(
            text=text,
            truth=m.department_code,
            category=catalogue.resolve_label(s.label),
            place=_place(catalogue, text),
            suggestion=s,
        )
        for text, m, s in zip(texts, replies, suggestions, strict=True)
    ]
    print(f"model: {source} ({trained:.0f} s)")
    kinds = Counter(
        "street" if (d := catalogue.department(r.truth)) and d.kind == "street" else "body"
        for r in rows
    )
    print(
        f"rows: {len(rows)} real messages whose reply names a catalogue body "
        f"({kinds['body']} functional bodies, {kinds['street']} streets/towns)"
    )
    table, figures = head_to_head(catalogue, rows)
    print(f"{'source':<50} {'answered':>8} {'right':>6} {'precision':>9} {'of all':>7}")
    for name, answered, right in measure(catalogue, rows, figures):
        precision = right / answered if answered else 0.0
        print(f"{name:<50} {answered:>8} {right:>6} {precision:>9.3f} {right / len(rows):>7.3f}")
    print()
    print("where a source contradicts the catalogue lead of the prediction:")
    print(f"{'source':<50} {'rows':>8} {'source right':>12} {'lead right':>10}")
    for name, n, source_right, lead_right in table:
        print(f"{name:<50} {n:>8} {source_right:>12} {lead_right:>10}")
    print(f"measured here:   {figures}")
    print(f"router.routing:  {MEASURED_PRECISION}")
    if args.audit:
        print()
        audit(catalogue, model, args.audit)


if __name__ == "__main__":
    main()
