"""House Prices' training: every candidate model cross-validated on the log price
(model.py), the blend weights fitted on their out-of-fold predictions, the models the
blend gives weight refitted on every row, and the nested blend the CV scores (each
fold's weights fitted on the other folds only).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from competitions.house_prices.data import ID, TARGET, HouseData

log = logging.getLogger("compete")


@dataclass
class Trained:
    model: object                  # model.HouseModel: the blend of the final models
    X: pd.DataFrame                # the training rows' features
    y: np.ndarray                  # log prices
    outlier: np.ndarray            # the De Cock outliers (left out of one score, never of training)
    row_weights: np.ndarray | None
    names: list[str]               # the candidates, in their order
    oof: np.ndarray                # rows x candidates, out of fold
    fold_of: np.ndarray
    fold_scores: dict[str, list[float]]
    weights: np.ndarray            # the blend weights on every row
    nested: np.ndarray             # the nested blend, out of fold: what the CV scores
    cv_score: float


def train(data: HouseData, options) -> Trained:
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    # scikit-learn and catboost load here, not at import: `compete list` stays light.
    from competitions.house_prices import features as house_features
    from competitions.house_prices import model as house_model

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
    log.info("cv rmsle %.5f on all %d rows out of fold; %.5f with the %d De Cock outliers left out of the score only",
             cv_score, len(y), house_model.rmse(nested[~outlier], y[~outlier]), int(outlier.sum()))
    model = house_model.HouseModel(models=final, weights=dict(zip(names, map(float, weights))),
                                   feature_columns=list(X.columns), engineered=options.engineered)
    return Trained(model, X, y, outlier, row_weights, names, oof, fold_of, fold_scores, weights, nested, cv_score)
