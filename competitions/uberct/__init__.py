"""Zindi "Uber Movement SANRAL Cape Town Challenge": will a road segment see an
incident in a given hour? Rare events scored by F1, so the model ranks and a rule
chosen on out-of-time validation decides how many rows to flag."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.competition import BaseCompetition, Config, register
from common.metrics import F1
from common.runs import record
from common.submission import SubmissionFormat
from common.thresholds import best_threshold, expected_f1_count, fit_rate_rule, plot_f1
from competitions.uberct import data as D
from competitions.uberct import features as F
from competitions.uberct import model as M
from competitions.uberct import panel

log = logging.getLogger("compete")


@register
class UberCapeTown(BaseCompetition):
    name = "uberct"
    platform = "zindi"
    slug = "uber-movement-sanral-cape-town-challenge"
    metric = F1
    submission = SubmissionFormat(D.SAMPLE_FILE, id_column=D.ID, domain="binary")
    description = "Zindi, road incidents per segment and hour in Cape Town, F1"
    data_files = (D.TRAIN_FILE, D.SEGMENTS_ZIP, D.SAMPLE_FILE)

    def load(self, data_dir: Path) -> D.UberData:
        return D.load(data_dir)

    def synth(self, out_dir: Path, seed: int = 0, scale: str = "small") -> None:
        from competitions.uberct.synth import synth
        synth(Path(out_dir), seed=seed, scale=scale)

    @staticmethod
    def context(data: D.UberData, block_days: int | None = None) -> F.Context:
        """The feature context of `data`, built once per loaded data set."""
        cached = getattr(data, "_context", None)
        if cached is None or (block_days and cached.block_days != block_days):
            cached = F.Context(data, block_days)
            data._context = cached
        return cached

    def fit(self, data: D.UberData, config: Config, run_dir: Path) -> M.UberModel:
        from tqdm.auto import tqdm

        started = time.perf_counter()
        options = config.options
        rule = options.get("rule", "expected_f1")
        if rule not in M.RULES:
            raise io.InputError(f"unknown decision rule {rule!r}; known: {', '.join(M.RULES)}")
        negatives_per_positive = options.get("negatives_per_positive", 5 if config.fast else 15)
        refit = options.get("refit", not config.fast)
        params = M.parameters(config.fast, config.seed, options.get("threads", -1))
        params.update(options.get("catboost", {}))

        context = self.context(data)
        blocks = context.blocks()
        if len(blocks) < 2:
            raise io.InputError(f"{D.TRAIN_FILE}: incidents cover {context.test_day} days before the test period; "
                                f"need at least {3 * context.block_days} (history, training and validation blocks)")
        validation_span, training_spans = blocks[0], blocks[1:options.get("max_blocks", len(blocks))]
        segments, block_hours = len(context.ids), context.block_days * 24
        positive_segment, positive_offset = context.positive_cells(data.events)
        in_training = (positive_offset >= training_spans[-1][0] * 24) & (positive_offset < training_spans[0][1] * 24)
        positives = int(in_training.sum())
        cells = segments * block_hours * len(training_spans)
        negative_rate = float(min(1.0, negatives_per_positive * max(positives, 1) / max(cells - positives, 1)))
        log.info("uberct: %d segments, blocks of %d days: %d for training, 1 for validation; %d positive cells of %d; "
                 "negatives sampled at %.4f", segments, context.block_days, len(training_spans), positives, cells, negative_rate)

        rng = np.random.default_rng(config.seed)
        parts = [context.block_rows(data.events, span, negative_rate, rng)
                 for span in tqdm(training_spans, desc="panel", disable=config.quiet)]
        rows = F.concatenate(parts)
        features = panel.features(context, rows)
        scored = np.isin(np.arange(segments), context.position.reindex(np.unique(data.test_segments)).to_numpy())
        validation_rows = context.block_rows(data.events, validation_span, 1.0, rng)
        validation_rows = _subset(validation_rows, scored[validation_rows.segment])
        validation_features = panel.features(context, validation_rows)
        categorical = context.categorical_columns(features)
        log.info("uberct: training on %d rows (%d positive) x %d features; validating on %d rows (%d positive)",
                 len(rows), int(rows.label.sum()), features.shape[1], len(validation_rows), int(validation_rows.label.sum()))

        fit_started = time.perf_counter()
        booster = M.train(features, rows.label, negative_rate, categorical, params, (validation_features, validation_rows.label))
        iterations = booster.get_best_iteration() + 1
        validation_p = M.probabilities(booster, validation_features)
        labels = validation_rows.label
        best = best_threshold(labels, validation_p)
        rate_rule = fit_rate_rule(labels, validation_p)
        calibration = M.calibration(labels, validation_p)
        first_half = validation_rows.hour < validation_rows.hour.min() + (block_hours // 2) * F.HOUR
        crossed = M.cross_fitted_f1(labels, validation_p, first_half)
        log.info("validation: best F1 %.4f at p >= %.4g (%d flags, %d positives, %.1f expected); %.3f flags per expected incident; "
                 "calibration %.3f; cross-fitted F1 by rule: %s", best.f1, best.threshold, best.predicted_positives, best.positives,
                 validation_p.sum(), rate_rule.flags_per_expected, calibration, ", ".join(f"{k} {v:.4f}" for k, v in crossed.items()))
        plot_f1(labels, validation_p, Path(run_dir) / "f1_threshold.png",
                marks={"validation optimum": best.threshold},
                title=f"uberct validation ({validation_span[1] - validation_span[0]} days): best F1 {best.f1:.4f}")
        importance = pd.Series(booster.get_feature_importance(), index=features.columns).sort_values(ascending=False)
        _save_validation(run_dir, context, validation_rows, validation_p)
        fit_seconds = time.perf_counter() - fit_started

        if refit:
            # The validation block is the most recent data: train again with it, as
            # many trees as validation chose plus a tenth for the larger training set.
            with tqdm(total=1, desc="refit", disable=config.quiet) as bar:
                rows = F.concatenate([context.block_rows(data.events, validation_span, negative_rate, rng), rows])
                features = panel.features(context, rows)
                params = {**params, "iterations": max(1, int(round(iterations * 1.1)))}
                booster = M.train(features, rows.label, negative_rate, categorical, params)
                bar.update()
        del features, validation_features

        model = M.UberModel(booster, list(booster.feature_names_),
                            categorical, context.block_days, rule, rate_rule, best.threshold, calibration, str(run_dir))
        record(run_dir,
               metric=self.metric.name,
               cv_score=round(crossed[rule], 6),
               cv_score_note=f"F1 on the last {context.block_days} days before the test period (out of time), "
                             f"with the '{rule}' rule fitted on the other half of that period",
               validation_f1_best=round(best.f1, 6), validation_threshold=best.threshold,
               validation_flags=best.predicted_positives, validation_positives=best.positives,
               validation_expected_positives=round(float(validation_p.sum()), 2),
               flags_per_expected=round(rate_rule.flags_per_expected, 6), calibration=round(calibration, 6),
               cross_fitted_f1={k: round(v, 6) for k, v in crossed.items()},
               rule=rule, dirt=data.dirt, extras={k: v for k, v in data.sources.items() if k not in ("train", "segments")},
               features_used=list(booster.feature_names_), feature_importance={k: round(float(v), 3) for k, v in importance.head(20).items()},
               block_days=context.block_days, training_blocks=len(training_spans), negative_rate=negative_rate,
               training_rows=len(rows), best_iteration=iterations, refit=bool(refit),
               model_seconds=round(fit_seconds, 2), train_seconds=round(time.perf_counter() - started, 2))
        return model

    def predict(self, model: M.UberModel, data: D.UberData) -> pd.DataFrame:
        context = self.context(data, model.block_days)
        rows = context.test_rows(data)
        p = panel.probabilities(model, context, rows)  # on Dask under --scheduler
        flags = model.flags(p)
        figures = {"test_rows": len(p), "test_expected_positives": round(float(p.sum()), 2), "test_flags": int(flags.sum()),
                   "test_flags_by_rule": {"rate": model.rate_rule.count(p), "threshold": int((p >= model.threshold).sum()),
                                          "expected_f1": expected_f1_count(p * model.calibration)}}
        log.info("test: %d rows, %.1f expected incidents, %d flagged by the '%s' rule", len(p), p.sum(), flags.sum(), model.rule)
        if model.run_dir and Path(model.run_dir).is_dir():
            record(model.run_dir, **figures)
            frame = pd.DataFrame({D.ID: data.test_ids.astype(str), "probability": p.astype(np.float32)})
            with io.atomic_path(Path(model.run_dir) / "test_probabilities.parquet") as temporary:
                frame.to_parquet(temporary, index=False)
        return pd.DataFrame({D.ID: data.test_ids, D.TARGET: flags.astype(np.int8)})

    def score(self, submission: pd.DataFrame, answers: Path) -> dict[str, float]:
        """F1, and the oracle: the true probabilities with the best threshold in hindsight."""
        scores = super().score(submission, answers)
        answers = Path(answers)
        folder = answers if answers.is_dir() else answers.parent
        probabilities = folder / "probabilities.csv"
        if probabilities.is_file():
            truth = self.read_answers(answers, [D.TARGET])
            p = io.read_csv(probabilities, dtype={D.ID: str})
            merged = truth.merge(p, on=D.ID, how="inner", validate="one_to_one")
            oracle = best_threshold(merged[D.TARGET].to_numpy(), merged["probability"].to_numpy()).f1
            scores["oracle_f1"] = oracle
            scores["ratio_to_oracle"] = scores[self.metric.name] / oracle if oracle else float("nan")
        return scores


def _subset(rows: F.Rows, keep: np.ndarray) -> F.Rows:
    return F.Rows(rows.segment[keep], rows.hour[keep], rows.as_of[keep], None if rows.label is None else rows.label[keep])


def _save_validation(run_dir: Path, context: F.Context, rows: F.Rows, p: np.ndarray) -> None:
    frame = pd.DataFrame({D.SEGMENT_ID: context.ids[rows.segment].astype(str), "hour": rows.hour.astype("datetime64[s]"),
                          "label": rows.label, "probability": p.astype(np.float32)})
    with io.atomic_path(Path(run_dir) / "validation.parquet") as temporary:
        frame.to_parquet(temporary, index=False)
