"""What a House Prices run reports beside its model: oof.csv (each model's and the
nested blend's price for every training row, its fold, whether it is an outlier), the
plot of the nested predictions against the truth, and the Report (the nested CV, by
fold, without the outliers, by model, and weighted as the rows were when a weights file
was given).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, plots
from common.competition import OutOfFold, Report
from competitions.house_prices.data import ID, TARGET, HouseData
from competitions.house_prices.train import Trained


def write_out_of_fold(data: HouseData, trained: Trained, run_dir: Path) -> Path:
    frame = pd.DataFrame({ID: data.train[ID], "fold": trained.fold_of + 1, "outlier": trained.outlier,
                          TARGET: data.train[TARGET],
                          **{f"oof_{n}": np.exp(trained.oof[:, i]) for i, n in enumerate(trained.names)},
                          "oof_blend": np.exp(trained.nested)})
    path = Path(run_dir) / "oof.csv"
    io.write_csv(frame, path, float_format="%.2f")
    return path


def report(data: HouseData, options, trained: Trained, started: float) -> Report:
    from competitions.house_prices import features as house_features
    from competitions.house_prices import model as house_model

    y, nested, outlier, oof, names = trained.y, trained.nested, trained.outlier, trained.oof, trained.names
    weighted = weighting(options.weights, trained.row_weights, nested, y) if trained.row_weights is not None else {}
    return Report(
        out_of_fold=OutOfFold(predictions=pd.DataFrame({ID: data.train[ID], TARGET: np.exp(nested)}),
                              truth=data.train[[ID, TARGET]], fold=trained.fold_of),
        cv_score=trained.cv_score,
        fold_scores=[house_model.rmse(nested[trained.fold_of == fold], y[trained.fold_of == fold])
                     for fold in range(options.folds)],
        note=f"all {len(y)} rows, out of fold; nested: blend weights for each fold fitted on the other folds"
             + (f"; training rows weighted by {options.weights} in every model's fit, the blend weights and the score "
                f"unweighted (cv_score_weighted weights it)"
                if trained.row_weights is not None else ""),
        decisions={
            "cv_score_without_outliers": round(house_model.rmse(nested[~outlier], y[~outlier]), 6),
            "cv_score_without_outliers_note": f"rows left out of the score: the {int(outlier.sum())} De Cock outliers "
                                              f"(GrLivArea>{house_features.OUTLIER_AREA}, price<{house_features.OUTLIER_PRICE}); "
                                              "they are still trained on",
            "cv_by_model": {n: round(house_model.rmse(oof[:, i], y), 6) for i, n in enumerate(names)},
            "fold_scores_by_model": {n: [round(s, 6) for s in trained.fold_scores[n]] for n in names},
            "blend_weights": {n: round(float(w), 6) for n, w in zip(names, trained.weights)},
            "folds": options.folds, "rows": len(trained.X),
            "train_seconds": round(time.perf_counter() - started, 2), **weighted})


def weighting(path: Path, row_weights: np.ndarray, nested: np.ndarray, y: np.ndarray) -> dict:
    """What a run weighted by a file records: the file, its checksum, and the nested CV
    weighted as the training rows were (the score the weighting aims at: test-like rows count more)."""
    squared = (nested - y) ** 2
    return {"weights_file": str(Path(path).resolve()), "weights_sha256": io.sha256(path),
            "cv_score_weighted": round(float(np.sqrt(np.sum(row_weights * squared) / np.sum(row_weights))), 6)}


def plot_predictions(y_log: np.ndarray, predicted_log: np.ndarray, path: Path, title: str) -> None:
    """The out-of-fold predictions the CV score is measured on, against the truth."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actual, predicted = np.exp(y_log), np.exp(predicted_log)
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.scatter(actual, predicted, s=6, alpha=0.5)
    low, high = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
    axis.plot([low, high], [low, high], color="black", linewidth=1)
    axis.set(xscale="log", yscale="log", xlabel="actual SalePrice ($)", ylabel="out-of-fold prediction ($)",
             title=title)
    # Prices doubling from 25k: evenly spaced on the log scale, and short enough never to
    # overlap (matplotlib's labels for minor log ticks, "3x10^4 4x10^4", ran together).
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
    ticks = [25_000 * 2 ** k for k in range(8) if low / 1.5 <= 25_000 * 2 ** k <= high * 1.5]
    for side in (axis.xaxis, axis.yaxis):
        side.set_major_locator(FixedLocator(ticks))
        side.set_major_formatter(FuncFormatter(lambda value, _: f"{value / 1000:,.0f}k"))
        side.set_minor_formatter(NullFormatter())
    plots.save(figure, path)
