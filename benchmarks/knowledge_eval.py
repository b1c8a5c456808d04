"""How often the answer retrieval finds a reply about the same matter, on the real replies.

    python -m benchmarks.knowledge_eval [--seed 7] [--threshold 0.2]

Data: the 2,763 real messages with an official reply (fixtures/data/real). Each one in turn is
held out (leave-one-out): its text (title and body; also only its first 60 characters, what an
agent has typed) is the query, and the other 2,762 message/reply pairs are the articles
(question = message, answer = reply), indexed exactly as the service does
(`router.knowledge.retrieval.AnswerIndex` over the classifier pipeline's jieba terms). The top
article's reply is compared with the held-out message's own official reply.

"About the same matter" is judged by three stated rules:

* **class**: the two messages have the same level-1 class (城乡建设, 交通运输 ...: the gold
  label for the 100 messages that have one, else the prediction of a jieba + TF-IDF + LinearSVC
  classifier trained on the other labelled real messages, none of them a held-out one);
* **department**: both replies name a replying body that maps to the catalogue and it is the
  same one (only the 373 queries whose reply names one count; the rate is over pairs where both
  name one);
* **reply terms**: the cosine of the two replies' TF-IDF vectors (jieba terms; terms in more
  than 10 % of replies, the greetings and thanks every reply carries, are dropped) is at least
  ``--threshold`` (0.2).

Baselines: a random other reply of the same (gold or predicted) level-1 class, and a random
other reply. The boosted row gives the index the class of the query and of each article
(as the level-1 category code) as the service gives it the classifier's predicted category;
it lifts the **class** rule by construction and is shown for the other two rules.
"""

from __future__ import annotations

import argparse
import random
import re
import time
from collections import defaultdict

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.svm import LinearSVC

from classifier.text import TextPipeline
from fixtures import real
from router.catalogue import default_catalogue
from router.knowledge.retrieval import AnswerIndex, Document, join_terms

TYPED = 60


def _key(text: str) -> str:
    """Texts equal once whitespace is removed are the same message (as fixtures.build_real)."""
    return re.sub(r"\s+", "", text)


def _as_is(tokens: list[str]) -> list[str]:
    return tokens


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threshold", type=float, default=0.2)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    started = time.perf_counter()
    pipeline = TextPipeline()
    catalogue = default_catalogue()

    messages = [m for m in real.reply_messages() if m.reply]
    texts = [f"{m.title}\n{m.detail}" for m in messages]
    message_terms = [pipeline.tokens(t) for t in texts]
    reply_terms = [pipeline.tokens(m.reply) for m in messages]

    # Level-1 class: gold where known, else a classifier trained on the other labelled messages.
    labelled = real.labelled_messages()
    held = {_key(m.detail) for m in messages}
    train = [
        (t, y) for t, y in zip(labelled.texts, labelled.labels, strict=True) if _key(t) not in held
    ]
    vectorizer = TfidfVectorizer(analyzer=_as_is, sublinear_tf=True, ngram_range=(1, 1))
    features = vectorizer.fit_transform([pipeline.tokens(t) for t, _ in train])
    model = LinearSVC(C=0.5).fit(features, [y for _, y in train])
    predicted = model.predict(vectorizer.transform(message_terms))
    classes = [m.label_l1 or str(p) for m, p in zip(messages, predicted, strict=True)]
    gold = sum(1 for m in messages if m.label_l1)
    codes = {name: catalogue.resolve_label(name) for name in set(classes)}
    class_code = [c.code if (c := codes[name]) is not None else None for name in classes]

    # Reply similarity: TF-IDF of the replies without the boilerplate terms.
    reply_vectors = TfidfVectorizer(analyzer=_as_is, sublinear_tf=True, max_df=0.1).fit_transform(
        reply_terms
    )

    def reply_cosine(a: int, b: int) -> float:
        return float(reply_vectors[a].multiply(reply_vectors[b]).sum())

    departments = [m.department_code for m in messages]
    documents = [
        Document(
            id=i,
            text="",
            category_code=class_code[i],
            terms=join_terms(message_terms[i] + reply_terms[i]),
        )
        for i in range(len(messages))
    ]
    plain = AnswerIndex(pipeline.tokens).fit(documents)
    boosted = AnswerIndex(pipeline.tokens, category_weight=0.5).fit(documents)

    by_class: dict[str, list[int]] = defaultdict(list)
    for i, name in enumerate(classes):
        by_class[name].append(i)

    def retrieve(index: AnswerIndex, i: int, typed: bool, boost: bool) -> int | None:
        query = texts[i][:TYPED] if typed else texts[i]
        hits = index.search(
            query,
            category_code=class_code[i] if boost else None,
            k=1,
            exclude=frozenset({i}),
        )
        return hits[0].id if hits else None

    methods = {
        "retrieval, full message": lambda i: retrieve(plain, i, False, False),
        "retrieval, first 60 characters": lambda i: retrieve(plain, i, True, False),
        "retrieval + class boost, full": lambda i: retrieve(boosted, i, False, True),
        "retrieval + class boost, first 60": lambda i: retrieve(boosted, i, True, True),
        "baseline: random reply of the same class": lambda i: rng.choice(
            [j for j in by_class[classes[i]] if j != i]
        ),
        "baseline: random reply": lambda i: rng.choice([j for j in range(len(messages)) if j != i]),
    }
    print(
        f"{len(messages)} real messages with an official reply, leave-one-out; level-1 class:"
        f" {gold} gold, {len(messages) - gold} predicted (LinearSVC on {len(train)} labelled"
        f" messages); segmenter {pipeline.backend}; reply-terms threshold {args.threshold}"
    )
    print(
        "| method | answered | same class | same department (pairs) | reply terms ≥ t"
        " | class and (department or reply terms) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, pick in methods.items():
        answered = same_class = dept_pairs = same_dept = similar = either = 0
        for i in range(len(messages)):
            j = pick(i)
            if j is None:
                continue
            answered += 1
            klass = classes[i] == classes[j]
            same_class += klass
            dept = bool(departments[i]) and departments[i] == departments[j]
            if departments[i] and departments[j]:
                dept_pairs += 1
                same_dept += dept
            terms = reply_cosine(i, j) >= args.threshold
            similar += terms
            either += klass and (dept or terms)
        n = len(messages)
        print(
            f"| {name} | {answered / n:.1%} | {same_class / n:.1%}"
            f" | {same_dept / max(dept_pairs, 1):.1%} ({dept_pairs}) | {similar / n:.1%}"
            f" | {either / n:.1%} |"
        )
    print(f"({time.perf_counter() - started:.0f} s; rates over all {len(messages)} queries,")
    print(" a query without any hit counts as a miss; department over pairs naming one each)")


if __name__ == "__main__":
    main()
