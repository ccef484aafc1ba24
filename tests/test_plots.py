"""The run plots: training curves from history.csv, a confusion matrix, per-label scores,
each a PNG whose title (kept in its Title chunk) gives the score the run prints."""
from __future__ import annotations

import numpy as np
import pytest
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


@pytest.fixture
def drawn(monkeypatch) -> list:
    """Every figure saved during the test, drawn, for what a reader of the PNG would see."""
    from matplotlib.figure import Figure
    figures, save = [], Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)
    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def overlapping_tick_labels(figure) -> list[tuple[str, str]]:
    """Pairs of tick labels, within the axes' view, whose boxes overlap on the canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(figure)  # pyplot closed the figure once saved: draw it again, as the PNG was
    canvas.draw()
    renderer = canvas.get_renderer()
    pairs = []
    for axes in figure.axes:
        for side in (axes.xaxis, axes.yaxis):
            low, high = sorted(side.get_view_interval())
            labels = [tick.label1 for tick in side.get_major_ticks() + side.get_minor_ticks()
                      if low <= tick.get_loc() <= high and tick.label1.get_visible() and tick.label1.get_text()]
            boxes = [label.get_window_extent(renderer) for label in labels]
            pairs += [(labels[i].get_text(), labels[j].get_text()) for i in range(len(boxes))
                      for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]
    return pairs


def test_house_prices_predictions_have_tick_labels_that_do_not_overlap(drawn, tmp_path):
    from competitions.house_prices.report import plot_predictions
    rng = np.random.default_rng(0)
    y = np.log(rng.lognormal(12, 0.4, 1460).clip(34_900, 755_000))  # the spread of House Prices' SalePrice
    plot_predictions(y, y + rng.normal(0, 0.12, len(y)), tmp_path / "predicted.png", "t")
    assert overlapping_tick_labels(drawn[-1]) == []
    assert all(label.get_text() for label in drawn[-1].axes[0].get_xticklabels())  # and there are labels


def test_the_training_curves_legend_tells_train_from_valid(drawn, tmp_path):
    (tmp_path / "history.csv").write_text("epoch,train_loss,valid_loss\n0,0.9,1.0\n1,0.6,0.8\n")
    plots.training_curves({"network": tmp_path / "history.csv"}, tmp_path / "curves.png", "t")
    legend = drawn[-1].axes[0].get_legend()
    handles = dict(zip([text.get_text() for text in legend.get_texts()], legend.legend_handles))
    train, valid = handles["train loss"], handles["valid loss"]

    def looks(line):
        return line.get_linestyle(), line.get_marker(), line.get_markerfacecolor(), line.get_color()
    assert all(a != b for a, b in zip(looks(train), looks(valid)))  # line, marker, fill and colour all differ
    assert legend.handlelength >= 3  # long enough to show the dashes


def test_an_empty_cv_against_leaderboard_plot_says_why(drawn, tmp_path):
    from common import tracking
    tracking.plot_cv_against_leaderboard([], [], [], tmp_path / "empty.png", "t", "rmsle", "house-prices")
    said = " ".join(text.get_text() for text in drawn[-1].axes[0].texts)
    assert "no run has both a CV and a leaderboard score" in said and "compete submit house-prices FILE --wait" in said
