"""The stable held-out split of the retraining data (the history labels themselves are tested
through the real API in tests/service/test_training_task.py)."""

from __future__ import annotations

from pathlib import Path

from training.history import LabelledRow, is_held_out, write_split


def test_held_out_membership_is_stable_and_near_the_share(tmp_path: Path) -> None:
    texts = [f"第{i}号诉求：路灯不亮" for i in range(2000)]
    share = sum(is_held_out(t, 0.2) for t in texts) / len(texts)
    assert 0.17 < share < 0.23
    assert [is_held_out(t, 0.2) for t in texts] == [is_held_out(t, 0.2) for t in texts]

    rows = [LabelledRow(t, "01", None, "base", "x") for t in texts]
    first = write_split(rows, tmp_path / "a", holdout_share=0.2)
    # A later run with more data keeps every earlier held-out row held out.
    more = rows + [LabelledRow(f"新增诉求{i}", "02", None, "closed", "y") for i in range(300)]
    second = write_split(more, tmp_path / "b", holdout_share=0.2)
    old = set(first.holdout.read_text(encoding="utf-8").splitlines()[1:])
    new = set(second.holdout.read_text(encoding="utf-8").splitlines()[1:])
    assert old <= new
    assert first.train_rows + first.holdout_rows == 2000
    assert second.sources == {"base": 2000, "closed": 300}
