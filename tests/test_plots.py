"""The run plots: training curves from history.csv, a confusion matrix, per-label scores,
each a PNG whose title (kept in its Title chunk) gives the score the run prints."""
from __future__ import annotations

import numpy as np
from PIL import Image

from common import plots


def title_of(path) -> str:
    with Image.open(path) as image:
        return image.text["Title"]


def test_training_curves_read_every_history(tmp_path):
    for fold, losses in ((1, [(0.9, 1.0), (0.6, 0.8)]), (2, [(0.95, 1.1), (0.7, 0.85), (0.5, 0.7)])):
        (tmp_path / f"fold{fold}.csv").write_text("epoch,train_loss,valid_loss,time\n" + "".join(
            f"{epoch},{train},{valid},00:01\n" for epoch, (train, valid) in enumerate(losses)))
    (tmp_path / "empty.csv").write_text("")
    title = plots.cv_title("birdcall CNN", "logloss", 0.8123449)
    path = plots.training_curves({"fold 1": tmp_path / "fold1.csv", "fold 2": tmp_path / "fold2.csv",
                                  "fold 3": tmp_path / "empty.csv"}, tmp_path / "curves.png", title)
    assert title_of(path) == "birdcall CNN: cv logloss 0.81234"
    assert plots.training_curves({"x": tmp_path / "empty.csv"}, tmp_path / "none.png", "t") is None
    assert not (tmp_path / "none.png").exists()


def test_confusion_matrix_and_per_label_scores_are_pngs(tmp_path):
    y = np.array([0, 0, 1, 2, 2, 2])
    path = plots.confusion_matrix(y, np.array([0, 1, 1, 2, 2, 0]), ["a", "b", "c"], tmp_path / "confusion.png", "t1")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
    path = plots.per_label_scores({"zebra": 0.02, "empty": 0.3}, tmp_path / "labels.png", "t2", "log loss")
    assert title_of(path) == "t2" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
