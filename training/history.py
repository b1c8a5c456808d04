"""Training labels from the work-order history, and the retraining dataset built with them.

Which orders give a label (the order's *final* category and department):

- orders a department accepted or finished: `accepted`, `extension_requested`, `replied`,
  `closed`, `callback_done`, `reopened` (an unsatisfied citizen reopens the handling, not the
  route). Source `closed` for closed orders, else `accepted`;
- orders an agent dispatched and nobody has returned since (`dispatched` with an agent's dispatch
  as the last routing event): the confirm/override label the API stored on the dispatch event
  (source `agent_confirm` / `agent_override`), even before the department accepts;
- an order returned (退单) and then redispatched keeps its final department: source
  `return_corrected`. The department that returned it is a negative signal that we ignore
  (the classifier has no way to learn "not this department"); orders still waiting in `review`
  or `returned` give no label, nor do merged duplicates or orders without a leaf category.

Rows are keyed by the appeal text (`title` + newline + `text`, as the service classifies it).
The held-out split is stable: a row is held out when the hash of its text falls in the held-out
buckets, so no registry-trained version ever trained on a row any other one is judged on.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from router.catalogue.models import Category, Department
from router.workorders.models import Appeal, WorkOrder, WorkOrderEvent
from router.workorders.workflow import Action, State
from training.datasets import load_dataset, write_rows

__all__ = [
    "COLUMNS",
    "LabelledRow",
    "SplitFiles",
    "collect_history",
    "is_held_out",
    "read_base_rows",
    "write_split",
]

COLUMNS = ("text", "label", "department_code", "label_source", "origin")

SETTLED_STATES = frozenset(
    {
        State.ACCEPTED,
        State.EXTENSION_REQUESTED,
        State.REPLIED,
        State.CLOSED,
        State.CALLBACK_DONE,
        State.REOPENED,
    }
)
CLOSED_STATES = frozenset({State.CLOSED, State.CALLBACK_DONE})
ROUTING_ACTIONS = ("dispatch", "redispatch", "return", "triage_auto")


@dataclass(frozen=True)
class LabelledRow:
    text: str
    label: str
    department_code: str | None
    label_source: str
    origin: str  # a work-order number or a base file name

    def as_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "label": self.label,
            "department_code": self.department_code or "",
            "label_source": self.label_source,
            "origin": self.origin,
        }


def _label_source(order: WorkOrder, routing: Sequence[WorkOrderEvent]) -> str | None:
    """Why this order's final route is a label, or None when it is not one (yet)."""
    returned = order.return_count > 0 or any(e.action == Action.RETURN for e in routing)
    last = routing[-1] if routing else None
    agent = None
    if last is not None and last.action == Action.DISPATCH:
        source = (last.data or {}).get("label_source")
        if source in ("agent_confirm", "agent_override"):
            agent = str(source)
    if order.state in SETTLED_STATES:
        if returned:
            return "return_corrected"
        # The label source is named after the state that settled it.
        return agent or ("closed" if order.state in CLOSED_STATES else "accepted")
    if order.state == State.DISPATCHED and agent is not None:
        return "return_corrected" if returned else agent
    return None


def collect_history(*, db_session: Session, batch_size: int = 1000) -> list[LabelledRow]:
    """Labelled rows from the work orders (see the module docstring for the rules)."""
    leaves = set(db_session.scalars(select(Category.code).where(Category.level == 3)))
    departments = set(db_session.scalars(select(Department.code)))
    query = (
        select(WorkOrder.id, WorkOrder.number, Appeal.title, Appeal.text)
        .join(Appeal, Appeal.id == WorkOrder.appeal_id)
        .where(
            WorkOrder.state.in_(sorted(SETTLED_STATES | {State.DISPATCHED})),
            WorkOrder.category_code.is_not(None),
        )
        .order_by(WorkOrder.id)
    )
    candidates = list(db_session.execute(query))
    rows: list[LabelledRow] = []
    for start in range(0, len(candidates), batch_size):
        chunk = candidates[start : start + batch_size]
        ids = [c.id for c in chunk]
        orders = {
            o.id: o for o in db_session.scalars(select(WorkOrder).where(WorkOrder.id.in_(ids)))
        }
        routing: dict[int, list[WorkOrderEvent]] = {i: [] for i in ids}
        for event in db_session.scalars(
            select(WorkOrderEvent)
            .where(
                WorkOrderEvent.work_order_id.in_(ids),
                WorkOrderEvent.action.in_(ROUTING_ACTIONS),
            )
            .order_by(WorkOrderEvent.id)
        ):
            routing[event.work_order_id].append(event)
        for c in chunk:
            order = orders[c.id]
            if order.category_code not in leaves:
                continue
            source = _label_source(order, routing[c.id])
            if source is None:
                continue
            department = order.department_code if order.department_code in departments else None
            text = f"{c.title}\n{c.text}" if c.title else c.text
            rows.append(LabelledRow(text, order.category_code, department, source, c.number))
    return rows


def read_base_rows(
    paths: Sequence[str | Path],
    *,
    text_column: str,
    label_column: str,
    department_column: str | None,
) -> list[LabelledRow]:
    """Rows of the base corpus files (CSV or JSONL); DatasetError on a missing column."""
    dataset = load_dataset(
        paths,
        text_column=text_column,
        label_column=label_column,
        department_column=department_column,
        keep_rows=False,
    )
    assert dataset.labels is not None
    departments = dataset.departments or [None] * len(dataset.texts)
    origin = ",".join(Path(p).name for p in paths)
    return [
        LabelledRow(text, label, dept, "base", origin)
        for text, label, dept in zip(dataset.texts, dataset.labels, departments, strict=True)
    ]


def is_held_out(text: str, share: float) -> bool:
    """Stable held-out membership from the text alone (same text → same side, in every run)."""
    bucket = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") % 10_000
    return bucket < round(share * 10_000)


@dataclass(frozen=True)
class SplitFiles:
    train: Path
    holdout: Path
    train_rows: int
    holdout_rows: int
    sources: dict[str, int]
    holdout_fingerprint: str


def _fingerprint(rows: Iterable[LabelledRow]) -> str:
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row.text}\x1f{row.label}\x1f{row.department_code or ''}\x1e".encode())
    return "sha256:" + digest.hexdigest()


def write_split(
    rows: Sequence[LabelledRow], directory: Path, *, holdout_share: float
) -> SplitFiles:
    """Write `train.csv` and `holdout.csv` (columns `COLUMNS`) with the stable split."""
    train = [r for r in rows if not is_held_out(r.text, holdout_share)]
    holdout = [r for r in rows if is_held_out(r.text, holdout_share)]
    directory.mkdir(parents=True, exist_ok=True)
    train_path, holdout_path = directory / "train.csv", directory / "holdout.csv"
    write_rows(train_path, COLUMNS, [r.as_dict() for r in train])
    write_rows(holdout_path, COLUMNS, [r.as_dict() for r in holdout])
    return SplitFiles(
        train=train_path,
        holdout=holdout_path,
        train_rows=len(train),
        holdout_rows=len(holdout),
        sources=dict(Counter(r.label_source for r in rows)),
        holdout_fingerprint=_fingerprint(holdout),
    )
