"""Kaggle "House Prices: Advanced Regression Techniques": tabular regression, RMSLE."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, plots
from common.competition import BaseCompetition, OutOfFold, Report
from common.metrics import RMSE_OF_LOGS
from common.options import Options, option
from competitions.house_prices import data as house_data
from competitions.house_prices import inference
from competitions.house_prices.data import ID, TARGET, HouseData

log = logging.getLogger("compete")


MODELS = ("lasso", "elastic_net", "svr", "catboost", "lightgbm", "xgboost")
DEFAULT_MODELS = ("lasso", "elastic_net", "svr", "catboost")


@dataclass
class HouseOptions(Options):
    folds: int = option(5, "cross-validation folds; the blend weights of each are fitted on the others",
                       minimum=2)
    models: str = option(",".join(DEFAULT_MODELS), f"the models to cross-validate and blend, comma-separated, of {', '.join(MODELS)}")
    engineered: bool = option(True, "add engineered totals, ages and ordinal scores to the raw columns",
                              choices=(False, True))
    lasso_alpha: float = option(0.0005, "Lasso's L1 penalty", above=0, search=(1e-5, 1e-2), log=True)
    elastic_net_alpha: float = option(0.0008, "ElasticNet's penalty", above=0, search=(1e-5, 1e-2), log=True)
    l1_ratio: float = option(0.5, "ElasticNet's share of L1 in its penalty", minimum=0, maximum=1, search=(0.05, 0.95))
    svr_c: float = option(20.0, "SVR's C (less: more regularised)", above=0, search=(1.0, 200.0), log=True)
    svr_epsilon: float = option(0.008, "SVR's epsilon-insensitive band, in log price", minimum=0, search=(1e-3, 0.1), log=True)
    svr_gamma: float = option(0.0003, "SVR's RBF kernel width", above=0, search=(1e-5, 1e-2), log=True)
    trim_sigmas: float = option(3.0, "linear models refit without the training rows whose residual exceeds this many "
                                     "robust standard deviations", above=0, search=(2.0, 6.0))
    winsorize: float = option(0.995, "linear models' inputs are clipped to this quantile's tails, measured at fit",
                              above=0.5, maximum=1, search=(0.95, 1.0))
    iterations: int | None = option(None, "CatBoost trees; None: 400 with --fast, 2000", minimum=1,
                                    search=(200, 3000), log=True)
    learning_rate: float | None = option(None, "CatBoost learning rate; None: 0.1 with --fast, 0.04", above=0,
                                         search=(0.01, 0.3), log=True)
    depth: int = option(6, "CatBoost tree depth", minimum=1, maximum=16, search=(3, 10))
    l2_leaf_reg: float = option(3.0, "CatBoost L2 regularisation of leaf values", minimum=0, search=(0.3, 30.0), log=True)
    catboost_bags: int | None = option(None, "CatBoost models per fit, seeded apart and averaged; None: 1 with --fast, 2",
                                       minimum=1)
    boosted_trees: int | None = option(None, "LightGBM's and XGBoost's trees; None: 300 with --fast, 2000", minimum=1,
                                       search=(300, 5000), log=True)
    boosted_learning_rate: float | None = option(None, "LightGBM's and XGBoost's learning rate; None: 0.05 with --fast, "
                                                       "0.01", above=0, search=(0.003, 0.1), log=True)
    leaves: int = option(8, "LightGBM's leaves per tree (XGBoost: depth log2 of it)", minimum=2, search=(4, 32), log=True)
    column_share: float = option(0.3, "LightGBM's and XGBoost's share of the columns each tree sees", above=0, maximum=1,
                                 search=(0.1, 0.8))
    row_share: float = option(0.8, "LightGBM's and XGBoost's share of the rows each tree sees", above=0, maximum=1,
                              search=(0.4, 1.0))
    # row weights (issue 24): the file `compete check-split --weights` writes
    weights: Path | None = option(None, "a CSV of Id,weight (`compete check-split --weights`): every model trains on "
                                        "the rows weighted by it; the CV score stays unweighted (cv_score_weighted beside it)")

    def __post_init__(self):
        super().__post_init__()
        unknown = [name for name in self.models.split(",") if name.strip() not in MODELS]
        if unknown or not self.models.strip():
            raise io.InputError(f"models: {unknown[0] if unknown else self.models!r} is not a model; "
                                f"name one or more of {', '.join(MODELS)}, comma-separated")


class HousePrices(BaseCompetition):
    name = "house-prices"
    platform = "kaggle"
    slug = "house-prices-advanced-regression-techniques"
    metric = RMSE_OF_LOGS
    submission = house_data.SUBMISSION
    options = HouseOptions
    description = "Kaggle, tabular regression of sale prices"
    data_files = ("train.csv", "test.csv", "sample_submission.csv")
    float_format = inference.FLOAT_FORMAT
    # Not a code competition on Kaggle, but its run packages as a Kaggle notebook all the
    # same (`compete package house-prices --run-dir RUN --out DIR`): a worked example.
    bundle_entry = "competitions.house_prices.inference:run"
    bundle_files = ("model.pkl",)

    def fetch(self, out: Path, from_zip: Path | None = None) -> list[Path]:
        return house_data.fetch(out, from_zip)

    def load(self, data_dir: Path) -> HouseData:
        return house_data.load(data_dir)

    def fit(self, data: HouseData, options: HouseOptions, run_dir: Path):
        from common.progress import tqdm  # a bar on a terminal, plain lines in a log

        # scikit-learn and catboost load here, not at import: `compete list` stays light.
        from competitions.house_prices import features as house_features
        from competitions.house_prices import model as house_model

        started = time.perf_counter()
        folds = options.folds
        X = house_features.features(data.train, options.engineered)
        y = np.log(data.train[TARGET].to_numpy(dtype=float))
        outlier = house_features.is_outlier(data.train)
        row_weights = None
        if options.weights:  # here, not at import: the packaged notebook imports this package and needs none of it
            from common.adversarial import read_weights
            row_weights = read_weights(options.weights, data.train[ID])
        candidates = house_model.candidates(X, options)
        log.info("house-prices: %d rows, all trained on and scored, %d features, %d models x %d folds",
                 len(X), X.shape[1], len(candidates), folds)

        names = list(candidates)
        with tqdm(total=(folds + 1) * len(candidates), desc="house-prices", disable=options.quiet) as bar:
            oof, fold_of, fold_scores = house_model.cross_validate(X, y, candidates, folds, options.seed, bar.update,
                                                                   weights=row_weights)
            weights = house_model.blend_weights(oof, y)
            log.info("blend weights: %s", ", ".join(f"{n}={w:.3f}" for n, w in zip(names, weights)))
            final = {}
            for name, weight in zip(names, weights):
                if weight > 0:  # final models on every row; zero-weight models are not refitted
                    final[name] = house_model.fit_weighted(house_model.clone(candidates[name]), X, y, row_weights)
                bar.update()
        nested = house_model.nested_blend(oof, y, fold_of)
        cv_score = house_model.rmse(nested, y)
        without_outliers = house_model.rmse(nested[~outlier], y[~outlier])
        log.info("cv rmsle %.5f on all %d rows out of fold; %.5f with the %d De Cock outliers left out of the score only",
                 cv_score, len(y), without_outliers, int(outlier.sum()))
        nested_by_fold = [house_model.rmse(nested[fold_of == fold], y[fold_of == fold]) for fold in range(folds)]
        fitted = house_model.HouseModel(models=final, weights=dict(zip(names, map(float, weights))), feature_columns=list(X.columns),
                                        engineered=options.engineered)

        oof_frame = pd.DataFrame({ID: data.train[ID], "fold": fold_of + 1, "outlier": outlier, TARGET: data.train[TARGET],
                                  **{f"oof_{n}": np.exp(oof[:, i]) for i, n in enumerate(names)},
                                  "oof_blend": np.exp(nested)})
        io.write_csv(oof_frame, run_dir / "oof.csv", float_format="%.2f")
        plot_predictions(y, nested, run_dir / "predicted_vs_actual.png",
                         plots.cv_title("house-prices nested OOF, every row", self.metric.name, cv_score))
        truth = data.train[[ID, TARGET]]
        weighted = weighting(options.weights, row_weights, nested, y) if row_weights is not None else {}
        report = Report(
            out_of_fold=OutOfFold(predictions=pd.DataFrame({ID: data.train[ID], TARGET: np.exp(nested)}), truth=truth,
                                  fold=fold_of),
            cv_score=cv_score,
            fold_scores=nested_by_fold,
            note=f"all {len(y)} rows, out of fold; nested: blend weights for each fold fitted on the other folds"
                 + (f"; training rows weighted by {options.weights} in every model's fit, the blend weights and the score "
                    f"unweighted (cv_score_weighted weights it)"
                    if row_weights is not None else ""),
            decisions={
                "cv_score_without_outliers": round(without_outliers, 6),
                "cv_score_without_outliers_note": f"rows left out of the score: the {int(outlier.sum())} De Cock outliers "
                                                  f"(GrLivArea>{house_features.OUTLIER_AREA}, price<{house_features.OUTLIER_PRICE}); "
                                                  "they are still trained on",
                "cv_by_model": {n: round(house_model.rmse(oof[:, i], y), 6) for i, n in enumerate(names)},
                "fold_scores_by_model": {n: [round(s, 6) for s in fold_scores[n]] for n in names},
                "blend_weights": {n: round(float(w), 6) for n, w in zip(names, weights)},
                "folds": folds, "rows": len(X),
                "train_seconds": round(time.perf_counter() - started, 2), **weighted})
        return fitted, report

    def adversarial_frames(self, data: HouseData):
        from competitions.house_prices import features as house_features
        return tuple(pd.concat([frame[[ID]].reset_index(drop=True),
                                house_features.features(frame).reset_index(drop=True)], axis=1)
                     for frame in (data.train, data.test))

    def predict(self, model, data: HouseData) -> pd.DataFrame:
        return inference.predict(model, data.test)  # the packaged notebook's own code: same file both ways


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
