"""What the validation block decides and reports: the F1-optimal threshold, the rate rule
and the calibration, each rule's F1 fitted on one half of the block and scored on the
other (the printed CV), the validation rows kept for a blend, and the F1 plot."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, plots
from common.competition import OutOfFold
from common.metrics import F1
from common.thresholds import RateRule, Threshold, best_threshold, fit_rate_rule, plot_f1
from competitions.uberct import data as uber_data
from competitions.uberct import features as uber_features
from competitions.uberct import model as uber_model
from competitions.uberct.blocks import BlockPlan

log = logging.getLogger("compete")


@dataclass
class ValidationCheck:
    """What the validation block decided: the F1-optimal threshold, the rate rule, the
    calibration, and each rule's F1 fitted on one half of the block, scored on the other."""
    p: np.ndarray
    best: Threshold
    rate_rule: RateRule
    calibration: float
    crossed: dict[str, float]

    def figures(self) -> dict:
        return dict(validation_f1_best=round(self.best.f1, 6), validation_threshold=self.best.threshold,
                    validation_flags=self.best.predicted_positives, validation_positives=self.best.positives,
                    validation_expected_positives=round(float(self.p.sum()), 2),
                    flags_per_expected=round(self.rate_rule.flags_per_expected, 6), calibration=round(self.calibration, 6),
                    cross_fitted_f1={k: round(v, 6) for k, v in self.crossed.items()})


def check_on_validation(p: np.ndarray, rows: uber_features.Rows, context: uber_features.Context, plan: BlockPlan,
                        rule: str, run_dir: Path) -> ValidationCheck:
    labels, block_hours = rows.label, context.block_days * 24
    best = best_threshold(labels, p)
    rate_rule = fit_rate_rule(labels, p)
    calibration = uber_model.calibration(labels, p)
    first_half = in_first_half(rows, block_hours)
    crossed = uber_model.cross_fitted_f1(labels, p, first_half)
    log.info("validation: best F1 %.4f at p >= %.4g (%d flags, %d positives, %.1f expected); %.3f flags per expected incident; "
             "calibration %.3f; cross-fitted F1 by rule: %s", best.f1, best.threshold, best.predicted_positives, best.positives,
             p.sum(), rate_rule.flags_per_expected, calibration, ", ".join(f"{k} {v:.4f}" for k, v in crossed.items()))
    span = plan.validation_span
    plot_f1(labels, p, Path(run_dir) / "f1_threshold.png", marks={"validation optimum": best.threshold},
            title=f"{plots.cv_title('uberct', F1.name, crossed[rule])} ({rule} rule); "
                  f"best in hindsight {best.f1:.4f} over {span[1] - span[0]} days")
    _save_validation(run_dir, context, rows, p)
    return ValidationCheck(p, best, rate_rule, calibration, crossed)


def in_first_half(rows: uber_features.Rows, block_hours: int) -> np.ndarray:
    """The validation rows of the block's first half: the rule fitted on one half scores the other."""
    return rows.hour < rows.hour.min() + (block_hours // 2) * uber_features.HOUR


def validation_out_of_fold(context: uber_features.Context, rows: uber_features.Rows, p: np.ndarray) -> OutOfFold:
    """What a blend reads: the validation block's rows in submission shape (the sample's
    "<hour> x <segment>" ids), each one's probability before the rule decides, its label,
    and its half as its fold."""
    hours = pd.to_datetime(rows.hour.astype("datetime64[s]")).strftime(uber_data.ID_TIME_FORMAT)
    ids = pd.Series(hours.to_numpy(dtype=object) + uber_data.ID_SEPARATOR + context.ids[rows.segment].astype(str),
                    name=uber_data.ID)
    return OutOfFold(pd.DataFrame({uber_data.ID: ids, uber_data.TARGET: p}),
                     pd.DataFrame({uber_data.ID: ids, uber_data.TARGET: rows.label.astype(int)}),
                     np.where(in_first_half(rows, context.block_days * 24), 0, 1))


def _save_validation(run_dir: Path, context: uber_features.Context, rows: uber_features.Rows, p: np.ndarray) -> None:
    frame = pd.DataFrame({uber_data.SEGMENT_ID: context.ids[rows.segment].astype(str), "hour": rows.hour.astype("datetime64[s]"),
                          "label": rows.label, "probability": p.astype(np.float32)})
    with io.atomic_path(Path(run_dir) / "validation.parquet") as temporary:
        frame.to_parquet(temporary, index=False)
