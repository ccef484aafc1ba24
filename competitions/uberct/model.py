"""CatBoost on the sampled panel, and the decision rule that turns its probabilities
into the 0/1 flags F1 scores.

The default rule flags the k rows that maximise the expected F1, 2 * sum(top-k p) /
(k + sum p), on the test probabilities themselves, after scaling them by what the
validation period showed: incidents seen / incidents expected. So the positive rate
carried from validation to test is the model's calibration, not a share of rows or a
raw threshold: a quieter test quarter gets fewer flags, and a model that over- or
under-predicts recent incidents is corrected by the most recent evidence.

Negative cells are sampled at rate r, which multiplies the odds of a positive by 1/r;
a constant baseline of log(1/r) on the training pool absorbs that, so the model's raw
output is the log-odds of the full panel and its probabilities are calibrated. That
matters for the rule: it flags a number of rows proportional to the expected number
of incidents, the sum of those probabilities.

Each row also starts from its segment's incident rate (features.OFFSET: by default
the all-history rate shrunk towards the city's; or the level filter's forecast
(competitions.uberct.level) as of the day the row's history ends, for the row's month), added to the baseline in training and to the raw output in
prediction. The trees then learn how the hour, the weather and the rest multiply that
rate, instead of rebuilding a continuous rate from splits. Beside the trees, a
log-linear Poisson GLM (competitions.uberct.poisson) fits the rate as a product of the
level filter's forecast and one term per part of the hour (profile by road class and
kind of day, congestion, weather, traffic, season); a row's log rate is the two
averaged, 0.7 on the GLM (`poisson_share`). Then (by default) each segment's share of
the period's expected incidents is half the level filter's, in log
(competitions.uberct.shares), on the validation block as on the test period, before
any rule sees the probabilities.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from common.metrics import f1
from common.thresholds import RateRule, best_threshold, expected_f1_count, fit_rate_rule, top_k
from competitions.uberct.features import OFFSET

log = logging.getLogger("compete")

RULES = ("expected_f1", "rate", "threshold")


@dataclass
class UberModel:
    booster: object                 # catboost.CatBoostClassifier
    columns: list[str]
    categorical: list[str]
    block_days: int
    rule: str                       # one of RULES: how test flags are chosen
    rate_rule: RateRule
    threshold: float                # the validation F1-optimal probability threshold
    calibration: float = 1.0        # validation incidents / the sum of validation probabilities
    run_dir: str | None = None
    offset: str = "shrunk"  # features.OFFSETS: what the offset column copies
    bagged: list = field(default_factory=list)  # more boosters, other seeds on the same rows: their raw outputs are averaged
    level_share: float = 0.0  # the level filter's weight in each segment's share of the test incidents (competitions.uberct.shares)
    poisson: object = None    # competitions.uberct.poisson.PoissonModel, or None
    poisson_share: float = 0.0  # its weight in each row's log rate beside the trees'

    def probabilities(self, features: pd.DataFrame) -> np.ndarray:
        p = probabilities([self.booster, *self.bagged], features[self.columns])
        if self.poisson is None or self.poisson_share == 0:
            return p
        return blended(p, self.poisson.log_rate(features), self.poisson_share)

    def flags(self, p: np.ndarray) -> np.ndarray:
        return decide(p, self.rule, self.rate_rule, self.threshold, self.calibration)


def parameters(fast: bool, seed: int, threads: int) -> dict:
    return dict(iterations=150 if fast else 1500, learning_rate=0.15 if fast else 0.06, depth=6, l2_leaf_reg=5,
                loss_function="Logloss", random_seed=seed, thread_count=threads, verbose=False,
                allow_writing_files=False, max_ctr_complexity=1, border_count=128)


def train(features: pd.DataFrame, labels: np.ndarray, negative_rate: float, categorical: list[str], params: dict,
          validation: tuple[pd.DataFrame, np.ndarray] | None = None, early_stopping: int = 80):
    from catboost import CatBoostClassifier, Pool

    baseline = offset(features) - np.log(negative_rate)
    pool = Pool(features, labels, cat_features=categorical, baseline=baseline)
    booster = CatBoostClassifier(**params)
    if validation is None:
        return booster.fit(pool)
    # Validation rows are not sampled: the offset alone scores them at full-panel odds.
    evaluation = Pool(validation[0], validation[1], cat_features=categorical, baseline=offset(validation[0]))
    return booster.fit(pool, eval_set=evaluation, early_stopping_rounds=early_stopping, use_best_model=True)


def offset(features: pd.DataFrame) -> np.ndarray:
    """The log-odds each row starts from: its segment's shrunk log rate."""
    return features[OFFSET].to_numpy(dtype=np.float64)


def probabilities(boosters, features: pd.DataFrame) -> np.ndarray:
    """The probabilities of one booster, or of several by their mean log-odds (a bag)."""
    boosters = boosters if isinstance(boosters, list) else [boosters]
    raw = np.mean([b.predict(features, prediction_type="RawFormulaVal", thread_count=b.get_params().get("thread_count", -1))
                   for b in boosters], axis=0)
    return 1.0 / (1.0 + np.exp(-(raw + offset(features))))


def blended(p: np.ndarray, log_rate: np.ndarray, weight: float) -> np.ndarray:
    """The probabilities whose log rates are the trees' (from p) and `log_rate` averaged
    with `weight` on the latter."""
    trees = np.log(-np.log1p(-np.clip(p.astype(np.float64), 1e-300, 1 - 1e-12)))
    return -np.expm1(-np.exp((1 - weight) * trees + weight * log_rate))


def calibration(labels: np.ndarray, p: np.ndarray) -> float:
    expected = float(np.sum(p, dtype=np.float64))
    return float(labels.sum()) / expected if expected > 0 else 1.0


def decide(p: np.ndarray, rule: str, rate_rule: RateRule, threshold: float, scale: float = 1.0) -> np.ndarray:
    """Flags from probabilities: `expected_f1` (the expected-F1 count of p x scale),
    `rate` (flags per expected incident, as on validation) or `threshold` (p >= the
    validation optimum)."""
    if rule == "rate":
        return rate_rule.apply(p)
    if rule == "threshold":
        return p >= threshold
    if rule == "expected_f1":
        return top_k(p, expected_f1_count(p * scale))
    raise ValueError(f"unknown decision rule {rule!r}; known: {', '.join(RULES)}")


def cross_fitted_f1(labels: np.ndarray, p: np.ndarray, half: np.ndarray) -> dict[str, float]:
    """Validation F1 of each rule with no rule fitted on the rows it is scored on:
    the rule fitted on one half of the validation period flags the other half."""
    flags = {name: np.zeros(len(labels), dtype=bool) for name in RULES}
    for part in (half, ~half):
        other = ~part
        rate_rule = fit_rate_rule(labels[other], p[other])
        threshold = best_threshold(labels[other], p[other]).threshold
        scale = calibration(labels[other], p[other])
        for name in RULES:
            flags[name][part] = decide(p[part], name, rate_rule, threshold, scale)
    return {name: f1(labels, flag) for name, flag in flags.items()}
