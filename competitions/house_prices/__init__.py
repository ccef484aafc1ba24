"""Kaggle "House Prices: Advanced Regression Techniques": tabular regression scored by the
RMSE of log prices (metrics.RMSE_OF_LOGS; its runs print and record it as rmsle, as
they always have). fit: train.py (the candidates' K-fold CV, the blend, the final
models), report.py (oof.csv, the plot, the Report)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common import io, plots
from common.competition import BaseCompetition
from common.metrics import RMSE_OF_LOGS
from common.options import Options, option
from competitions.house_prices import data as house_data
from competitions.house_prices import inference
from competitions.house_prices.data import ID, HouseData

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
        from competitions.house_prices import report, train

        started = time.perf_counter()
        trained = train.train(data, options)
        report.write_out_of_fold(data, trained, run_dir)
        report.plot_predictions(trained.y, trained.nested, run_dir / "predicted_vs_actual.png",
                                plots.cv_title("house-prices nested OOF, every row", self.metric.name, trained.cv_score))
        return trained.model, report.report(data, options, trained, started)

    def adversarial_frames(self, data: HouseData):
        from competitions.house_prices import features as house_features
        return tuple(pd.concat([frame[[ID]].reset_index(drop=True),
                                house_features.features(frame).reset_index(drop=True)], axis=1)
                     for frame in (data.train, data.test))

    def predict(self, model, data: HouseData) -> pd.DataFrame:
        return inference.predict(model, data.test)  # the packaged notebook's own code: same file both ways
