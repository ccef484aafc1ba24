"""Zindi "Uber Movement SANRAL Cape Town Challenge": will a road segment see an
incident in a given hour? Rare events scored by F1, so the model ranks and a rule
chosen on out-of-time validation decides how many rows to flag."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from common import io, plots
from common.competition import BaseCompetition, OutOfFold, Report
from common.metrics import F1
from common.options import Options, option
from common.thresholds import RateRule, Threshold, best_threshold, expected_f1_count, fit_rate_rule, plot_f1
from competitions.uberct import data as uber_data
from competitions.uberct import features as uber_features
from competitions.uberct import model as uber_model
from competitions.uberct import panel

log = logging.getLogger("compete")


@dataclass
class UberOptions(Options):
    rule: Literal["expected_f1", "rate", "threshold"] = option(
        "expected_f1", "how many test rows to flag: maximise expected F1, the validation flag rate, or its threshold")
    negatives_per_positive: int | None = option(None, "negative cells sampled per positive; None: 5 with --fast, 15",
                                                minimum=1, search=(3, 30), log=True)
    refit: bool | None = option(None, "train again with the validation block added; None: not with --fast, else yes",
                                choices=(False, True))
    max_blocks: int | None = option(None, "at most this many training blocks, most recent first; None: all",
                                    minimum=1)
    threads: int = option(-1, "CatBoost threads; -1: every core")
    iterations: int | None = option(None, "CatBoost trees before early stopping; None: 150 with --fast, 1500",
                                    minimum=1, search=(100, 3000), log=True)
    learning_rate: float | None = option(None, "CatBoost learning rate; None: 0.15 with --fast, 0.06", above=0,
                                         search=(0.01, 0.3), log=True)
    depth: int = option(6, "CatBoost tree depth", minimum=1, maximum=16, search=(3, 10))
    offset: Literal["shrunk", "level"] = option(
        "shrunk", "each row's starting log rate: its segment's all-history rate shrunk, or its level filter forecast")
    segment_history: bool = option(True, "the windowed, part-of-day, neighbour and road incident rates as features beside the "
                                   "offset", choices=(False, True))
    bags: int = option(1, "boosters on the final rows, each with its own seed; their log-odds are averaged", minimum=1)


class UberCapeTown(BaseCompetition):
    name = "uberct"
    platform = "zindi"
    slug = "uber-movement-sanral-cape-town-challenge"
    metric = F1
    submission = uber_data.SUBMISSION
    description = "Zindi, road incidents per segment and hour in Cape Town, F1"
    data_files = (uber_data.TRAIN_FILE, uber_data.SEGMENTS_ZIP, uber_data.SAMPLE_FILE)
    options = UberOptions

    def load(self, data_dir: Path) -> uber_data.UberData:
        return uber_data.load(data_dir)

    def synth(self, out_dir: Path, seed: int = 0, scale: str = "small") -> None:
        from competitions.uberct.synth import synth
        synth(Path(out_dir), seed=seed, scale=scale)

    @staticmethod
    def context(data: uber_data.UberData, block_days: int | None = None, offset: str = "shrunk") -> uber_features.Context:
        """The feature context of `data`, built once per loaded data set."""
        cached = data.context
        if cached is None or (block_days and cached.block_days != block_days) or cached.offset != offset:
            cached = data.context = uber_features.Context(data, block_days, offset)
        return cached

    def fit(self, data: uber_data.UberData, options: UberOptions, run_dir: Path):
        from common.progress import tqdm  # a bar on a terminal, plain lines in a log

        started = time.perf_counter()
        context = self.context(data, offset=options.offset)
        plan = plan_blocks(context, data, options)
        rng = np.random.default_rng(options.seed)
        rows = uber_features.concatenate([context.block_rows(data.events, span, plan.negative_rate, rng)
                                          for span in tqdm(plan.training_spans, desc="panel", disable=options.quiet)])
        features = uber_features.trained_columns(panel.features(context, rows), options.segment_history)
        validation_rows = validation_panel(context, data, plan, rng)
        validation_features = uber_features.trained_columns(panel.features(context, validation_rows), options.segment_history)
        categorical = context.categorical_columns(features)
        log.info("uberct: training on %d rows (%d positive) x %d features; validating on %d rows (%d positive)",
                 len(rows), int(rows.label.sum()), features.shape[1], len(validation_rows), int(validation_rows.label.sum()))

        fit_started = time.perf_counter()
        params = catboost_parameters(options)
        booster = uber_model.train(features, rows.label, plan.negative_rate, categorical, params,
                                   (validation_features, validation_rows.label))
        iterations = booster.get_best_iteration() + 1
        checked = check_on_validation(uber_model.probabilities(booster, validation_features), validation_rows, context, plan,
                                      options.rule, run_dir)
        importance = pd.Series(booster.get_feature_importance(), index=features.columns).sort_values(ascending=False)
        fit_seconds = time.perf_counter() - fit_started
        del features, validation_features

        refit = (not options.fast) if options.refit is None else options.refit
        bagged = []
        if refit or options.bags > 1:
            # The validation block is the most recent data: train again with it, as
            # many trees as validation chose plus a tenth for the larger training set
            # (and the bag's other boosters alike, each with its own seed).
            with tqdm(total=options.bags, desc="refit", disable=options.quiet) as bar:
                if refit:
                    rows = uber_features.concatenate([context.block_rows(data.events, plan.validation_span, plan.negative_rate, rng), rows])
                    params = {**params, "iterations": max(1, int(round(iterations * 1.1)))}
                else:
                    params = {**params, "iterations": iterations}
                features = uber_features.trained_columns(panel.features(context, rows), options.segment_history)
                if refit:
                    booster = uber_model.train(features, rows.label, plan.negative_rate, categorical, params)
                bar.update()
                for bag in range(1, options.bags):
                    bagged.append(uber_model.train(features, rows.label, plan.negative_rate, categorical,
                                                   {**params, "random_seed": params["random_seed"] + bag}))
                    bar.update()
                del features

        model = uber_model.UberModel(booster, list(booster.feature_names_), categorical, context.block_days, options.rule,
                                     checked.rate_rule, checked.best.threshold, checked.calibration, str(run_dir), bagged=bagged,
                                     offset=options.offset)
        decisions = dict(
            **checked.figures(), rule=options.rule, dirt=data.dirt,
            extras={k: v for k, v in data.sources.items() if k not in ("train", "segments")},
            features_used=list(booster.feature_names_),
            feature_importance={k: round(float(v), 3) for k, v in importance.head(20).items()},
            level_drift=dict(zip(("persistence", "size"), context.level_drift or ())), bags=options.bags,
            block_days=context.block_days, training_blocks=len(plan.training_spans), negative_rate=plan.negative_rate,
            training_rows=len(rows), best_iteration=iterations, refit=bool(refit),
            model_seconds=round(fit_seconds, 2), train_seconds=round(time.perf_counter() - started, 2))
        cv = checked.crossed[options.rule]
        decisions["out_of_fold_note"] = (f"out of time, not K folds: out_of_fold.csv holds the validation block's "
                                         f"{len(validation_rows.label)} rows, fold 1 its first half and fold 2 its second "
                                         f"(a blend fits on one half, scores the other, as the rule is)")
        return model, Report(cv_score=cv, fold_scores=[cv], decisions=decisions,
                             note=f"F1 on the last {context.block_days} days before the test period (out of time), "
                                  f"with the '{options.rule}' rule fitted on the other half of that period",
                             out_of_fold=validation_out_of_fold(context, validation_rows, checked.p))

    def predict(self, model: uber_model.UberModel, data: uber_data.UberData) -> pd.DataFrame:
        context = self.context(data, model.block_days, model.offset)
        rows = context.test_rows(data)
        p = panel.probabilities(model, context, rows)  # on Dask under --scheduler
        flags = model.flags(p)
        log.info("test: %d rows, %.1f expected incidents, %d flagged by the '%s' rule (by rule: rate %d, threshold %d, "
                 "expected_f1 %d)", len(p), p.sum(), flags.sum(), model.rule, model.rate_rule.count(p),
                 int((p >= model.threshold).sum()), expected_f1_count(p * model.calibration))
        if model.run_dir and Path(model.run_dir).is_dir():
            frame = pd.DataFrame({uber_data.ID: data.test_ids.astype(str), "probability": p.astype(np.float32)})
            with io.atomic_path(Path(model.run_dir) / "test_probabilities.parquet") as temporary:
                frame.to_parquet(temporary, index=False)
        return pd.DataFrame({uber_data.ID: data.test_ids, uber_data.TARGET: flags.astype(np.int8)})

    def test_scores(self, model: uber_model.UberModel, data: uber_data.UberData) -> pd.DataFrame:
        """The test probabilities a blend pools (its threshold refitted on the validation
        block): those `predict` kept in the run, else computed again."""
        kept = Path(model.run_dir or "") / "test_probabilities.parquet"
        if model.run_dir and kept.is_file():
            frame = pd.read_parquet(kept)
            if len(frame) == len(data.test_ids) and (frame[uber_data.ID].to_numpy() == data.test_ids.astype(str)).all():
                return frame.rename(columns={"probability": uber_data.TARGET})
        context = self.context(data, model.block_days)
        p = panel.probabilities(model, context, context.test_rows(data))
        return pd.DataFrame({uber_data.ID: data.test_ids.astype(str), uber_data.TARGET: p})

    def score(self, submission: pd.DataFrame, answers: Path) -> dict[str, float]:
        """F1, and the oracle: the true probabilities with the best threshold in hindsight."""
        scores = super().score(submission, answers)
        answers = Path(answers)
        folder = answers if answers.is_dir() else answers.parent
        probabilities = folder / "probabilities.csv"
        if probabilities.is_file():
            truth = self.read_answers(answers, [uber_data.TARGET])
            p = io.read_csv(probabilities, dtype={uber_data.ID: str})
            merged = truth.merge(p, on=uber_data.ID, how="inner", validate="one_to_one")
            oracle = best_threshold(merged[uber_data.TARGET].astype(int).to_numpy(), merged["probability"].to_numpy()).f1
            scores["oracle_f1"] = oracle
            scores["ratio_to_oracle"] = scores[self.metric.name] / oracle if oracle else float("nan")
        return scores


@dataclass
class BlockPlan:
    """Which days train and which validate, and how densely negatives are sampled."""
    validation_span: tuple[int, int]        # the last block before the test period
    training_spans: list[tuple[int, int]]   # the blocks before it, most recent first
    negative_rate: float                    # share of the negative cells sampled into the panel


def plan_blocks(context: uber_features.Context, data: uber_data.UberData, options: UberOptions) -> BlockPlan:
    blocks = context.blocks()
    if len(blocks) < 2:
        raise io.InputError(f"{uber_data.TRAIN_FILE}: incidents cover {context.test_day} days before the test period; "
                            f"need at least {3 * context.block_days} (history, training and validation blocks)")
    validation_span, training_spans = blocks[0], blocks[1:(options.max_blocks or len(blocks)) + 1]
    per_positive = options.negatives_per_positive
    per_positive = (5 if options.fast else 15) if per_positive is None else per_positive
    segments, block_hours = len(context.ids), context.block_days * 24
    _, positive_offset = context.positive_cells(data.events)
    in_training = (positive_offset >= training_spans[-1][0] * 24) & (positive_offset < training_spans[0][1] * 24)
    positives = int(in_training.sum())
    cells = segments * block_hours * len(training_spans)
    negative_rate = float(min(1.0, per_positive * max(positives, 1) / max(cells - positives, 1)))
    log.info("uberct: %d segments, blocks of %d days: %d for training, 1 for validation; %d positive cells of %d; "
             "negatives sampled at %.4f", segments, context.block_days, len(training_spans), positives, cells, negative_rate)
    return BlockPlan(validation_span, training_spans, negative_rate)


def validation_panel(context: uber_features.Context, data: uber_data.UberData, plan: BlockPlan, rng) -> uber_features.Rows:
    """Every cell of the validation block (no sampling) on the segments the test scores."""
    scored = np.isin(np.arange(len(context.ids)), context.position.reindex(np.unique(data.test_segments)).to_numpy())
    rows = context.block_rows(data.events, plan.validation_span, 1.0, rng)
    return _subset(rows, scored[rows.segment])


def catboost_parameters(options: UberOptions) -> dict:
    params = uber_model.parameters(options.fast, options.seed, options.threads)
    chosen = {"iterations": options.iterations, "learning_rate": options.learning_rate, "depth": options.depth}
    return {**params, **{key: value for key, value in chosen.items() if value is not None}}


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


def _subset(rows: uber_features.Rows, keep: np.ndarray) -> uber_features.Rows:
    return uber_features.Rows(rows.segment[keep], rows.hour[keep], rows.as_of[keep], None if rows.label is None else rows.label[keep])


def _save_validation(run_dir: Path, context: uber_features.Context, rows: uber_features.Rows, p: np.ndarray) -> None:
    frame = pd.DataFrame({uber_data.SEGMENT_ID: context.ids[rows.segment].astype(str), "hour": rows.hour.astype("datetime64[s]"),
                          "label": rows.label, "probability": p.astype(np.float32)})
    with io.atomic_path(Path(run_dir) / "validation.parquet") as temporary:
        frame.to_parquet(temporary, index=False)
