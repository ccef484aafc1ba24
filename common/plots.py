"""The plots a competitor expects from a run, one PNG each, written atomically:
training curves from the trainer's history.csv, a confusion matrix, per-label scores.

A title that gives a score gives the one the run prints (`cv_title`), to the same
digits, so a plot and the terminal never disagree about how good a run was.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io


def cv_title(what: str, metric: str, cv_score: float) -> str:
    """`what: cv METRIC 0.12345`, as `compete run` prints the cv_score metrics.json
    records (rounded to 6 places, then shown to 5: cli.py, common.competition.Report)."""
    return f"{what}: cv {metric} {round(float(cv_score), 6):.5f}"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save(figure, path: Path) -> Path:
    """Write the PNG (these plots' and a competition's own); its title also goes in the
    file's Title text chunk, so a test (or a script) can read which score the picture claims."""
    figure.tight_layout()
    title = figure.axes[0].get_title() if figure.axes else ""
    with io.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png", metadata={"Title": title})
    _pyplot().close(figure)
    return Path(path)


def training_curves(histories: dict[str, Path], path: Path, title: str) -> Path | None:
    """Train and validation loss by epoch from each history.csv (one line per network,
    e.g. per fold); None when no history holds an epoch yet."""
    frames = {}
    for name, history in histories.items():
        if Path(history).is_file() and Path(history).stat().st_size:
            frame = pd.read_csv(history)
            if len(frame) and "epoch" in frame:
                frames[name] = frame
    if not frames:
        return None
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    # Train and valid differ in line, marker and fill, not in a dash pattern alone, which a
    # legend's short sample line and small markers hid; one network: in colour too.
    styles = {"train_loss": {"linestyle": "--", "marker": "s", "markerfacecolor": "white"},
              "valid_loss": {"linestyle": "-", "marker": "o"}}
    for index, (name, frame) in enumerate(frames.items()):
        epochs = frame["epoch"].to_numpy() + 1
        for split, (column, style) in enumerate(styles.items()):
            if column in frame:
                color = f"C{(index if len(frames) > 1 else split) % 10}"
                label = column.replace("_", " ") if len(frames) == 1 else f"{name} {column.replace('_', ' ')}"
                axis.plot(epochs, pd.to_numeric(frame[column], errors="coerce"), color=color, markersize=5,
                          markeredgecolor=color, label=label, **style)
    axis.set(xlabel="epoch", ylabel="loss", title=title)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.legend(fontsize=8, ncol=2 if len(frames) > 1 else 1, handlelength=4)
    return save(figure, path)


def confusion_matrix(y_true: np.ndarray, y_predicted: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    """Rows: the true class; columns: the predicted one; each row as shares of its class."""
    classes = len(labels)
    counts = np.zeros((classes, classes))
    np.add.at(counts, (np.asarray(y_true, dtype=int), np.asarray(y_predicted, dtype=int)), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    plt = _pyplot()
    size = max(5.0, 0.22 * classes + 2)
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(classes), labels, rotation=90, fontsize=6)
    axis.set_yticks(range(classes), labels, fontsize=6)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    figure.colorbar(image, ax=axis, fraction=0.04, label="share of the true class")
    return save(figure, path)


def per_label_scores(scores: dict[str, float], path: Path, title: str, xlabel: str) -> Path:
    """One bar per label, worst (largest) at the top."""
    ordered = sorted(scores.items(), key=lambda item: item[1])
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, max(3.0, 0.16 * len(ordered) + 1)))
    axis.barh(range(len(ordered)), [value for _, value in ordered])
    axis.set_yticks(range(len(ordered)), [name for name, _ in ordered], fontsize=6)
    axis.set(xlabel=xlabel, title=title)
    return save(figure, path)


def predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray, path: Path, title: str, xlabel: str) -> Path:
    """Each row's out-of-fold prediction against its truth, with the diagonal."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 5))
    axis.scatter(actual, predicted, s=5, alpha=0.4)
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="black", linewidth=1)
    axis.set(xlabel=xlabel, ylabel="out-of-fold prediction", title=title)
    return save(figure, path)


def reliability(confidence: np.ndarray, correct: np.ndarray, path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    """How often a prediction is right against how sure it was, in ten bins of
    confidence, with the diagonal a calibrated model follows."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 5))
    bins = np.clip((confidence * 10).astype(int), 0, 9)
    centres = [(confidence[bins == b].mean(), correct[bins == b].mean()) for b in range(10) if (bins == b).any()]
    axis.plot(*zip(*centres), marker="o")
    axis.plot([0, 1], [0, 1], color="black", linewidth=1)
    axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return save(figure, path)
