"""A small check on the real TipDM 2020 data; skipped where ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier import HotlineClassifier
from training.datasets import load_dataset
from training.evaluation import evaluate

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "tipdm2020_messages_l1.csv"


@pytest.mark.skipif(not DATA.is_file(), reason="real data (../shared/data) not present")
def test_level_one_model_on_real_messages_beats_a_floor():
    ds = load_dataset([DATA], text_column="text", label_column="label_l1")
    assert ds.labels is not None
    texts, labels = ds.texts[::8], ds.labels[::8]  # every 8th row keeps the test fast
    cut = int(len(texts) * 0.8)
    model = HotlineClassifier(random_state=0).fit(texts[:cut], labels[:cut])
    metrics = evaluate(model, texts[cut:], labels[cut:])
    assert metrics["levels"][0]["macro_f1"] > 0.75
    assert metrics["ece"] < 0.15
