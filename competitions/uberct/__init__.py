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

from common import io
from common.competition import BaseCompetition, Report
from common.metrics import F1
from common.options import Options, option
from common.thresholds import best_threshold, expected_f1_count
from competitions.uberct import data as uber_data
from competitions.uberct import features as uber_features
from competitions.uberct import blocks, panel, poisson, refit, shares, validate
from competitions.uberct import model as uber_model

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
    level_share: float = option(0.5, "the level filter's weight in each segment's share of the test period's incidents, "
                                "beside the trees' (in log; the trees spread it over the hours); 0: the trees' alone",
                                minimum=0, maximum=1)
    poisson_share: float = option(0.7, "the Poisson GLM's weight (competitions.uberct.poisson) in each row's log rate "
                                  "beside the trees'; 0: the trees alone, 1: the GLM alone", minimum=0, maximum=1)


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
        plan = blocks.plan_blocks(context, data, options)
        rng = np.random.default_rng(options.seed)
        rows = uber_features.concatenate([context.block_rows(data.events, span, plan.negative_rate, rng)
                                          for span in tqdm(plan.training_spans, desc="panel", disable=options.quiet)])
        features = uber_features.trained_columns(panel.features(context, rows), options.segment_history)
        validation_rows = blocks.validation_panel(context, data, plan, rng)
        validation_features = uber_features.trained_columns(panel.features(context, validation_rows), options.segment_history)
        categorical = context.categorical_columns(features)
        log.info("uberct: training on %d rows (%d positive) x %d features; validating on %d rows (%d positive)",
                 len(rows), int(rows.label.sum()), features.shape[1], len(validation_rows), int(validation_rows.label.sum()))

        fit_started = time.perf_counter()
        params = catboost_parameters(options)
        booster = uber_model.train(features, rows.label, plan.negative_rate, categorical, params,
                                   (validation_features, validation_rows.label))
        iterations = booster.get_best_iteration() + 1
        glm = poisson.fit(features, rows.label, poisson.row_weights(rows.label, plan.negative_rate)) if options.poisson_share else None
        validation_p = uber_model.probabilities(booster, validation_features)
        if glm is not None:
            validation_p = uber_model.blended(validation_p, glm.log_rate(validation_features), options.poisson_share)
        validation_p = shares.level_shares(validation_p, validation_rows, context, options.level_share)
        checked = validate.check_on_validation(validation_p, validation_rows, context, plan, options.rule, run_dir)
        importance = pd.Series(booster.get_feature_importance(), index=features.columns).sort_values(ascending=False)
        fit_seconds = time.perf_counter() - fit_started
        del features, validation_features

        final = refit.final_boosters(booster, iterations, rows, context, data, plan, categorical, params, rng, options, glm)
        booster, rows = final.booster, final.rows

        model = uber_model.UberModel(booster, list(booster.feature_names_), categorical, context.block_days, options.rule,
                                     checked.rate_rule, checked.best.threshold, checked.calibration, str(run_dir), bagged=final.bagged,
                                     offset=options.offset, level_share=options.level_share, poisson=final.poisson,
                                     poisson_share=options.poisson_share)
        decisions = dict(
            **checked.figures(), rule=options.rule, dirt=data.dirt,
            extras={k: v for k, v in data.sources.items() if k not in ("train", "segments")},
            features_used=list(booster.feature_names_),
            feature_importance={k: round(float(v), 3) for k, v in importance.head(20).items()},
            level_drift=dict(zip(("persistence", "size"), context.level_drift or ())), bags=options.bags, level_share=options.level_share,
            poisson_share=options.poisson_share,
            block_days=context.block_days, training_blocks=len(plan.training_spans), negative_rate=plan.negative_rate,
            training_rows=len(rows), best_iteration=iterations, refit=final.refit,
            model_seconds=round(fit_seconds, 2), train_seconds=round(time.perf_counter() - started, 2))
        cv = checked.crossed[options.rule]
        decisions["out_of_fold_note"] = (f"out of time, not K folds: out_of_fold.csv holds the validation block's "
                                         f"{len(validation_rows.label)} rows, fold 1 its first half and fold 2 its second "
                                         f"(a blend fits on one half, scores the other, as the rule is)")
        return model, Report(cv_score=cv, fold_scores=[cv], decisions=decisions,
                             note=f"F1 on the last {context.block_days} days before the test period (out of time), "
                                  f"with the '{options.rule}' rule fitted on the other half of that period",
                             out_of_fold=validate.validation_out_of_fold(context, validation_rows, checked.p))

    def predict(self, model: uber_model.UberModel, data: uber_data.UberData) -> pd.DataFrame:
        context = self.context(data, model.block_days, model.offset)
        rows = context.test_rows(data)
        p = shares.level_shares(panel.probabilities(model, context, rows), rows, context, model.level_share)  # on Dask under --scheduler
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
        context = self.context(data, model.block_days, model.offset)
        rows = context.test_rows(data)
        p = shares.level_shares(panel.probabilities(model, context, rows), rows, context, model.level_share)
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


def catboost_parameters(options: UberOptions) -> dict:
    params = uber_model.parameters(options.fast, options.seed, options.threads)
    chosen = {"iterations": options.iterations, "learning_rate": options.learning_rate, "depth": options.depth}
    return {**params, **{key: value for key, value in chosen.items() if value is not None}}
