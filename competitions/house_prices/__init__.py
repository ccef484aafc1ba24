"""Kaggle "House Prices: Advanced Regression Techniques": tabular regression, RMSLE."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.competition import BaseCompetition, Config, register
from common.metrics import RMSLE
from common.runs import record
from common.submission import SubmissionFormat
from competitions.house_prices import data as D
from competitions.house_prices import features as F
from competitions.house_prices import model as M

log = logging.getLogger("compete")


@register
class HousePrices(BaseCompetition):
    name = "house-prices"
    platform = "kaggle"
    slug = "house-prices-advanced-regression-techniques"
    metric = RMSLE
    submission = SubmissionFormat("sample_submission.csv", id_column=D.ID, domain="positive")
    description = "Kaggle, tabular regression of sale prices"
    data_files = ("train.csv", "test.csv", "sample_submission.csv")
    float_format = "%.2f"

    def fetch(self, out: Path, from_zip: Path | None = None) -> list[Path]:
        return D.fetch(out, from_zip)

    def load(self, data_dir: Path) -> D.HouseData:
        return D.load(data_dir)

    def fit(self, data: D.HouseData, config: Config, run_dir: Path) -> M.HouseModel:
        started = time.perf_counter()
        folds = config.options.get("folds", 5)
        X = F.features(data.train)
        y = np.log(data.train[D.TARGET].to_numpy(dtype=float))
        keep = ~F.is_outlier(data.train)
        models = M.candidates(X, config.fast, config.seed)
        log.info("house-prices: %d rows (%d outliers left out of training), %d features, %d models x %d folds",
                 len(X), int((~keep).sum()), X.shape[1], len(models), folds)

        from tqdm.auto import tqdm
        names = list(models)
        with tqdm(total=(folds + 1) * len(models), desc="house-prices", disable=config.quiet) as bar:
            oof, fold_of, fold_scores = M.cross_validate(X, y, keep, models, folds, config.seed, bar.update)
            weights = M.blend_weights(oof[keep], y[keep])
            log.info("blend weights: %s", ", ".join(f"{n}={w:.3f}" for n, w in zip(names, weights)))
            final = {}
            for name, weight in zip(names, weights):
                if weight > 0:  # final models on every kept row; zero-weight models are not refitted
                    final[name] = M.clone(models[name]).fit(X[keep], y[keep])
                bar.update()
        blended = oof @ weights
        cv_score = M.nested_blend_score(oof, y, fold_of, keep)
        model = M.HouseModel(models=final, weights=dict(zip(names, map(float, weights))), feature_columns=list(X.columns))

        oof_frame = pd.DataFrame({D.ID: data.train[D.ID], "fold": fold_of + 1, "outlier": ~keep,
                                  D.TARGET: data.train[D.TARGET],
                                  **{f"oof_{n}": np.exp(oof[:, i]) for i, n in enumerate(names)},
                                  "oof_blend": np.exp(blended)})
        io.write_csv(oof_frame, run_dir / "oof.csv", float_format="%.2f")
        plot_predictions(y[keep], blended[keep], run_dir / "predicted_vs_actual.png")
        record(run_dir,
               metric=self.metric.name,
               cv_score=round(cv_score, 6),
               cv_score_note="nested: blend weights for each fold fitted on the other folds; "
                             f"{int((~keep).sum())} documented outliers (GrLivArea>4000, price<300k) excluded",
               cv_score_all_rows=round(M.rmse(blended, y), 6),
               cv_by_model={n: round(M.rmse(oof[keep, i], y[keep]), 6) for i, n in enumerate(names)},
               fold_scores={n: [round(s, 6) for s in fold_scores[n]] for n in names},
               blend_weights={n: round(float(w), 6) for n, w in zip(names, weights)},
               folds=folds, rows=len(X), outliers_excluded=int((~keep).sum()),
               train_seconds=round(time.perf_counter() - started, 2))
        return model

    def predict(self, model: M.HouseModel, data: D.HouseData) -> pd.DataFrame:
        prices = np.exp(model.predict_log(F.features(data.test)))
        return pd.DataFrame({D.ID: data.test[D.ID].astype(str), D.TARGET: prices})


def plot_predictions(y_log: np.ndarray, predicted_log: np.ndarray, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actual, predicted = np.exp(y_log), np.exp(predicted_log)
    figure, axis = plt.subplots(figsize=(6, 6))
    axis.scatter(actual, predicted, s=6, alpha=0.5)
    low, high = min(actual.min(), predicted.min()), max(actual.max(), predicted.max())
    axis.plot([low, high], [low, high], color="black", linewidth=1)
    axis.set(xscale="log", yscale="log", xlabel="actual SalePrice", ylabel="out-of-fold prediction",
             title=f"house-prices OOF, RMSLE {M.rmse(y_log, predicted_log):.4f}")
    figure.tight_layout()
    with io.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100, format="png")
    plt.close(figure)
