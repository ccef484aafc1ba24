"""Any competition on Kaggle, Zindi or DrivenData (`PLATFORM:SLUG`) shipped as a table, free
text, or a folder of images or audio beside a CSV: the format is read from the sample
submission in the data folder, the metric from `--metric` (else guessed from the sample).

load: media first (media.py: a labels CSV or class folders beside the files the sample
names), else sample (by content) -> test (same ids) -> train (the test's columns + targets)
-> task and column kinds. fit, for a table: K-fold out-of-fold CV of each family (CatBoost,
LightGBM, XGBoost, the linear model; model.py, with out-of-fold target encoding in
encoding.py), a blend or a level-2 stack fitted on their out-of-fold predictions (stack.py),
then the decision the metric asks for (labels from an OOF threshold, calibrated
probabilities, a log target). When free text dominates the columns (text.py) the families
are the text models instead, TF-IDF logistic regression and NB-SVM (and a fine-tuned
transformer when `--set backbone=` names one: transformer.py), through the same CV, blend
and decision. Images and audio train one network on a held-out split (media.py,
common/vision.py, common/sound.py).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import callbacks, io
from common import metrics as metric_table
from common.competition import BaseCompetition, OutOfFold, Report
from common.metrics import Metric
from common.options import option
from common.submission import DOMAIN_OF_OUTPUT, SubmissionFormat
from competitions.tabular import data as D
from competitions.tabular import encoding as E
from competitions.tabular import features as F
from competitions.tabular import inference
from competitions.tabular import media as MD
from competitions.tabular import model as M
from competitions.tabular import stack as stacking
from competitions.tabular import text as T
from competitions.tabular import transformer as TR
from competitions.tabular import transformer_inference as TI
from competitions.tabular.model import TabularModel  # here before it moved: older runs' pickles name it so

log = logging.getLogger("compete")


def _subsets(names: tuple) -> tuple:
    """Every non-empty subset of `names`, each in their order: the `models` values tune searches."""
    import itertools
    return tuple(",".join(chosen) for size in range(1, len(names) + 1) for chosen in itertools.combinations(names, size))


@dataclass
class TabularOptions(MD.MediaOptions):  # a folder of images or audio is served too (media.py)
    folds: int | None = option(None, "K of the K-fold CV; None: 3 with --fast, else 5", minimum=2)
    time_budget: float = option(600.0, "seconds for the whole fit; sizes the families, CV repeats and rounds from "
                                       "the data's shape", above=0)
    models: str = option("auto", "the families to cross-validate and combine; auto: tfidf,nbsvm when free text "
                                 "dominates (text.py), and transformer when backbone names one (transformer.py), else catboost,lightgbm,xgboost,linear as the budget affords "
                                 "(model.plan)",
                         choices=("auto", *_subsets(M.TABLE_FAMILIES), "linear,catboost", "tfidf,nbsvm", "tfidf", "nbsvm",
                                  "tfidf,nbsvm,transformer", "tfidf,transformer", "nbsvm,transformer", "transformer"))
    iterations: int = option(0, "CatBoost's maximum rounds; 0: as many as the budget affords", minimum=0)
    learning_rate: float | None = option(None, "CatBoost's learning rate; None: sized with its rounds from the budget",
                                         above=0, search=(0.01, 0.3), log=True)
    depth: int = option(6, "CatBoost tree depth", minimum=1, maximum=16, search=(3, 10))
    leaves: int = option(31, "LightGBM's leaves a tree", minimum=2, maximum=1024, search=(8, 128), log=True)
    bags: int | None = option(None, "times the K-fold CV runs on other splits (K x bags models averaged per "
                                    "family); None: as many (up to 3) as the budget affords", minimum=1, maximum=10,
                              search=(1, 3))
    combiner: str = option("auto", "how the families' out-of-fold predictions combine: blend (non-negative weights), "
                                   "stack (ridge / logistic level 2), auto: the better in nested CV",
                           choices=("auto", "blend", "stack"))
    encode_above: int = option(E.ENCODE_ABOVE, "distinct values above which a categorical is target-encoded out of "
                                               "fold for LightGBM, XGBoost and the linear model", minimum=1,
                               search=(5, 200), log=True)
    final: str = option("bag", "each boosted family's final model: bag (its fold models' mean) or refit (CatBoost "
                               "once more on every row)", choices=("bag", "refit"))
    # row weights (issue 24): the file `compete check-split --weights` writes
    weights: Path | None = option(None, "a CSV of id,weight (`compete check-split --weights`): the table families train "
                                        "on the rows weighted by it; the CV score stays unweighted")


def guess_metric(target: D.Target, sample: pd.DataFrame) -> str:
    """A metric when none was given, from what the sample holds: numbers for
    regression, labels when the sample holds whole numbers or words, else probabilities."""
    if target.task == "regression":
        return "rmse"
    if target.class_columns or target.task == "multilabel":
        return "logloss"
    values = pd.to_numeric(sample[target.sample_columns[0]], errors="coerce")
    if values.notna().all() and (values.round() != values).any():
        return "auc" if target.task == "binary" else "logloss"
    return "accuracy"


def explain_blend(metric: Metric, cv_score: float, by_model: dict[str, float], decision: M.Decision,
                  combined: str = "blend") -> None:
    """Say which figure is nested, and why the blend can score below a model of its own:
    the blend's cv fits its weights and decision on the other folds only; a model's own
    figure fits its decision on the very rows it is scored on."""
    shown = ", ".join(f"{name} {score:.5f}" for name, score in by_model.items())
    log.info("cv %s %.5f is the %s's, nested: each fold scored with %s and a decision fitted on the other "
             "folds only; each model alone: %s (not nested)", metric.name, cv_score, combined,
             "weights" if combined == "blend" else "a level-2 model", shown)
    best = max(by_model, key=lambda name: by_model[name] if metric.greater_is_better else -by_model[name])
    if metric.better(by_model[best], cv_score):
        if decision.kind != "identity":
            reason = (f"{best}'s figure fits its decision ({decision.words()}) on the very rows it is scored on, "
                      f"which flatters it; the blend's fits nothing on the fold it scores")
        else:
            reason = (f"{best}'s figure fits nothing on the rows it scores, and the blend weights, fitted on the "
                      f"other folds, do worse on each held-out fold than {best} alone (the models are close, or "
                      f"the folds small)")
        log.info("the %s scores below %s alone (%.5f against %.5f): %s; the nested figure is the one to expect "
                 "of the submission", combined, best, cv_score, by_model[best], reason)


class Tabular(BaseCompetition):
    """One entry serves every PLATFORM:SLUG; `metric` is a `--metric` name or alias."""

    description = ("any table, free-text, image or audio competition: format read from its files, metric from --metric "
                   "or guessed")
    options = TabularOptions
    bundle_entry = "competitions.tabular.inference:run"   # a Kaggle notebook (`compete package`)
    bundle_files = (inference.MODEL,)

    def __init__(self, platform: str = "kaggle", slug: str = "tabular", metric: str | None = None):
        self.platform, self.slug = platform, slug
        self.name = f"{platform}:{slug}"
        try:
            self.metric_name = metric_table.canonical(metric) if metric else None
        except ValueError as error:
            raise io.InputError(f"--metric: {error}") from None
        self.metric = metric_table.resolve(metric) if metric else metric_table.RMSE
        self.submission = None   # read from the folder: `load` returns it with the data

    # The format and the metric are the data's: `load` reads them once per folder and
    # returns them with it; nothing is written on the competition (stateless).
    def _metric_for(self, target: D.Target, sample: pd.DataFrame) -> Metric:
        name = self.metric_name or guess_metric(target, sample)
        if self.metric_name is None:
            log.info("%s: no --metric given; %s guessed from the sample (pass --metric to choose)", self.name, name)
        return metric_table.resolve(name, target.task)

    @staticmethod
    def _table_format(data: D.TabularData, metric: Metric):
        """The submission format of a table's folder: the domain follows the metric."""
        return inference.submission_format(data.target, metric, data.layout.source.name, data.id_column)

    def metric_for(self, data: D.TabularData | MD.MediaData, model=None) -> Metric:
        if isinstance(model, MD.MediaModel):
            return metric_table.resolve(model.metric, model.meta["task"])
        return model.metric if model is not None else data.metric  # what the model was fitted to score, whatever --metric says now

    def submission_for(self, data: D.TabularData | MD.MediaData, model=None):
        if isinstance(model, MD.MediaModel):
            return MD.submission_format(model.meta, self.metric_for(data, model))
        return self._table_format(data, model.metric) if model is not None else data.submission

    def load(self, data_dir: Path) -> D.TabularData | MD.MediaData:
        layout = MD.recognise(Path(data_dir))
        if layout is not None:   # images or audio beside a CSV: media.py
            provisional = metric_table.resolve(self.metric_name) if self.metric_name else None
            data = MD.load(Path(data_dir), layout, provisional)
            metric = metric_table.resolve(MD.metric_name(data, self.metric_name), data.target.task)
            return dataclasses.replace(data, metric=metric, submission=MD.submission_format(data, metric))
        provisional = metric_table.resolve(self.metric_name) if self.metric_name else None
        data = D.load(Path(data_dir), provisional)
        T.refuse_empty(data.train, data.test, data.features, data.train_source.name, data.layout.test.name)
        metric = self._metric_for(data.target, data.sample)
        return dataclasses.replace(data, metric=metric, submission=self._table_format(data, metric))

    def synth(self, out_dir: Path, seed: int = 0, scale: str = "small") -> None:
        """A competition in the layout the slug names when it is one of the free-text layouts
        (kaggle:nlp-getting-started, kaggle:spooky-author-identification,
        kaggle:jigsaw-toxic-comment-classification-challenge); otherwise a binary table with
        numeric, categorical, date and free-text columns."""
        from competitions.tabular import media_synth
        from competitions.tabular import synth as S
        if self.slug in media_synth.LAYOUTS:
            media_synth.make(Path(out_dir), self.slug, seed=seed, scale=scale)
            log.info("%s: synthetic images in the layout of %s", self.name, self.slug)
        elif self.slug in S.TEXT_LAYOUTS:
            S.make_text(Path(out_dir), self.slug, S.TEXT_ROWS[scale][self.slug], seed)
            log.info("%s: synthetic free-text corpus in the layout of %s", self.name, self.slug)
        else:
            S.synth(Path(out_dir), seed=seed, scale=scale)

    def sample(self, data_dir: Path) -> pd.DataFrame:
        try:
            media = MD.recognise(Path(data_dir))
        except D.NoTrainFile:   # media whose labels cannot be told: the sample is still the sample
            media = None
        if media is not None:
            return io.read_csv(media.sample, dtype=str, keep_default_na=False)
        layout = D.infer_sample(Path(data_dir))
        return io.read_csv(layout.source, dtype=str, keep_default_na=False)

    def validate(self, submission: pd.DataFrame, data_dir: Path):
        from common.submission import validate
        try:
            format = self.load(data_dir).submission
        except D.NoTrainFile:
            # Only the sample to go by: its ids and header, and the metric's domain
            # when that needs no train labels.
            layout = D.infer_sample(Path(data_dir))
            output = metric_table.resolve(self.metric_name).output if self.metric_name else "value"
            domain = DOMAIN_OF_OUTPUT[output] if output != "label" else "any"
            format = SubmissionFormat(layout.source.name, id_column=layout.id_column, domain=domain)
        return validate(submission, self.sample(data_dir), format)

    def score(self, submission: pd.DataFrame, answers: Path) -> dict[str, float]:
        """The metric against the truth in submission shape; labels compare as text."""
        id_column, value_columns = str(submission.columns[0]), [str(c) for c in submission.columns[1:]]
        if self.metric_name is None:
            raise io.InputError(f"{self.name}: scoring needs the metric: pass --metric (e.g. {', '.join(metric_table.NAMES)})")
        truth = self.read_answers(answers, value_columns, self.file_format(submission)).astype({id_column: str}).set_index(id_column)
        predicted = submission.astype({id_column: str}).set_index(id_column)
        absent = predicted.index.difference(truth.index)
        if len(absent):
            raise io.InputError(f"{answers}: no answer for id {absent[0]} ({len(absent)} ids in all)")
        truth = truth.loc[predicted.index, value_columns]
        label_metric = metric_table.resolve(self.metric_name).output == "label"
        if label_metric and len(value_columns) == 1 and MD.is_tags(pd.concat([truth.iloc[:, 0],
                                                                               predicted[value_columns[0]]])):
            # space-separated tags (media.py): one 0/1 column per tag, scored as multi-label
            y_true, y_pred = MD.tag_matrices(truth.iloc[:, 0], predicted[value_columns[0]])
            task = "multilabel"
        elif label_metric and len(value_columns) == 1:
            labels = sorted(set(truth.iloc[:, 0].astype(str)) | set(predicted[value_columns[0]].astype(str)))
            index = {label: i for i, label in enumerate(labels)}
            y_true = truth.iloc[:, 0].astype(str).map(index).to_numpy()
            y_pred = predicted[value_columns[0]].astype(str).map(index).to_numpy()
            task = "binary" if len(labels) <= 2 else "multiclass"
        else:
            y_true = truth.apply(pd.to_numeric).to_numpy(dtype=float)
            y_pred = predicted[value_columns].apply(pd.to_numeric).to_numpy(dtype=float)
            one_hot = y_true.shape[1] > 1 and np.allclose(y_true.sum(axis=1), 1.0)
            task = "multiclass" if one_hot else "multilabel" if y_true.shape[1] > 1 else "binary"
            if y_true.shape[1] == 1:
                y_true, y_pred = y_true[:, 0], y_pred[:, 0]
        metric = metric_table.resolve(self.metric_name, task)
        return {metric.name: metric(y_true, y_pred)}

    def fit(self, data: D.TabularData, options: TabularOptions, run_dir: Path):
        from common.progress import tqdm  # a bar on a terminal, plain lines in a log

        if isinstance(data, MD.MediaData):
            if options.weights is not None:
                raise io.InputError(f"weights={options.weights}: row weights are for tables (catboost, linear); "
                                    f"{data.layout.kind} files take none")
            return MD.fit(self, data, options, run_dir)
        started = time.perf_counter()
        target, metric = data.target, data.metric
        columns = F.describe(data.train, data.test, data.features)
        layout = T.recognise(data.train, data.test, columns.kinds, data.train_source.name, data.layout.test.name)
        families = [name.strip() for name in options.models.split(",") if name.strip()]
        if families == ["auto"]:
            # None: the plan picks them from the data's shape; a transformer joins when a backbone is given
            families = [*T.FAMILIES, *([TR.FAMILY] if TR.joins(options.backbone) else [])] if layout else None
        unknown = [name for name in families or () if name not in (*M.TABLE_FAMILIES, *T.FAMILIES, TR.FAMILY)]
        if unknown or families == []:
            raise io.InputError(f"models={options.models!r}: known families are auto, {', '.join(M.TABLE_FAMILIES)}, "
                                f"{', '.join(T.FAMILIES)}, {TR.FAMILY}")
        features = F.Features(columns, seed=options.seed).fit(data.train, data.test)
        X = features.trees(data.train)
        y, log_target = self._encode(data)
        self._refuse_constant_labels(data, y)
        outputs = len(target.classes) if target.task == "multiclass" else len(target.columns)
        categorical = len(columns.of("categorical"))
        plan = M.plan(len(X), X.shape[1] - categorical, categorical, target.task, outputs, options.time_budget,
                      options.fast, options.folds or None, tuple(families) if families else None, options.bags or 0,
                      options.final == "refit")
        families = list(plan.families)
        log.info("%s: layout %s -> models %s", self.name, layout.describe() if layout else
                 "table (no free-text column dominates)", ", ".join(families))
        if options.iterations:
            plan = dataclasses.replace(plan, iterations=options.iterations, early_stopping=max(50, options.iterations // 10))
        plan = dataclasses.replace(plan, learning_rate=options.learning_rate or plan.learning_rate, depth=options.depth,
                                   leaves=options.leaves)
        encoded = E.high_cardinality(pd.concat([data.train[columns.of("categorical")], data.test[columns.of("categorical")]]),
                                     columns.of("categorical"), options.encode_above)
        if encoded and any(name in ("lightgbm", "xgboost", "linear") for name in families):
            log.info("target-encoded out of fold (LightGBM, XGBoost, linear): %s", ", ".join(encoded))
        numeric = [c for c in X.columns if c not in columns.of("categorical")]
        loss = {"mae": "MAE"}.get(metric.name) if target.task == "regression" else None
        linear_frame = pd.concat([X, data.train[columns.of("text")]], axis=1)
        vectors = None
        if any(name in T.FAMILIES for name in families):
            if target.task == "regression":
                raise io.InputError(f"models={options.models!r}: the text families classify; {target.columns[0]} is a "
                                    f"regression target (use catboost, linear)")
            # Vocabularies from train + test cells (no labels): the folds and families share them.
            vectors = T.TextVectors(columns.of("text"), columns.of("categorical"), columns.of("numeric"))
            vectors.fit(pd.concat([linear_frame, pd.concat([features.trees(data.test), data.test[columns.of("text")]],
                                                           axis=1)], ignore_index=True))
            vectors.remember(linear_frame)
            log.info("text features: %d TF-IDF word and character n-grams, %d other columns", vectors.text_width,
                     len(vectors.categorical) + len(vectors.numeric))
        transformer = TR.plan(options, target.task, outputs, columns.of("text"), data.train, data.test, y, plan.folds) \
            if TR.FAMILY in families else None
        makers = {
            "catboost": lambda: M.CatBoostModel(target.task, list(X.columns), columns.of("categorical"), plan, options.seed, loss),
            "lightgbm": lambda: M.LightGBMModel(target.task, list(X.columns), columns.of("categorical"), encoded, plan,
                                                options.seed, outputs, loss),
            "xgboost": lambda: M.XGBoostModel(target.task, list(X.columns), columns.of("categorical"), encoded, plan,
                                              options.seed, outputs, loss),
            "linear": lambda: M.LinearModel(target.task, numeric, columns.of("categorical"), columns.of("text"), options.seed,
                                            encoded),
            "tfidf": lambda: T.TfidfLogistic(target.task, vectors, options.seed),
            "nbsvm": lambda: T.NaiveBayesLogistic(target.task, vectors, options.seed),
            "transformer": lambda: TR.Transformer(transformer),
        }
        makers = {name: makers[name] for name in families}
        row_weights = self._row_weights(data, options, families)
        kinds = {kind: len(columns.of(kind)) for kind in F.KINDS}
        repeats = plan.repeats if any(name in M.TABLE_FAMILIES for name in makers) else 1
        log.info("%s: %s, %d rows (%d unlabelled left out), %d features (%s), metric %s, %d folds%s%s%s",
                 self.name, target.task, len(X), data.train.attrs.get("unlabelled_rows", 0), len(data.features),
                 ", ".join(f"{n} {k}" for k, n in kinds.items() if n), metric.name, plan.folds,
                 f" x {repeats} repeats" if repeats > 1 else "",
                 f", catboost {plan.iterations} rounds at lr {plan.learning_rate:.3g}" if "catboost" in makers else "",
                 f", lightgbm/xgboost {plan.rounds} rounds at lr {plan.boosted_learning_rate:.3g}"
                 if {"lightgbm", "xgboost"} & set(makers) else "")

        truth = self._truth(data)

        def fold_figure(fold: int, predictions: dict, done: np.ndarray) -> None:
            """For a tune's pruner: the metric of the families' plain mean on the rows done so
            far, its decision fitted on them (comparable across trials at the same fold)."""
            if callbacks.listened():
                mean = np.mean([predictions[name][done] for name in predictions], axis=0)
                decided = M.fit_decision(target.task, metric, y[done], mean).apply(mean)
                callbacks.scored(fold, metric(truth[done], self._values(decided, target, log_target, metric, as_indices=True)))

        with tqdm(total=plan.folds * repeats * len(makers), desc=self.name, disable=options.quiet) as bar:
            oof, fold_of, fold_models, seconds = M.cross_validate(linear_frame, y, makers, target.task, plan.folds,
                                                                  options.seed, bar.update, weights=row_weights,
                                                                  repeats=repeats, after_fold=fold_figure)
        names = list(oof)
        # Blend and stack each scored in nested CV; auto keeps the stack only when it is better.
        kinds_tried = ["blend", "stack"] if options.combiner == "auto" and len(names) > 1 else [options.combiner]
        kinds_tried = ["blend" if kind == "auto" else kind for kind in kinds_tried]
        nested = {kind: stacking.nested(oof, y, fold_of, target.task, metric, kind, options.seed) for kind in kinds_tried}
        cv_by_combiner = {kind: float(metric(truth, self._values(nested[kind][0], target, log_target, metric, as_indices=True)))
                          for kind in kinds_tried}
        chosen = kinds_tried[0]
        for kind in kinds_tried[1:]:
            if metric.better(cv_by_combiner[kind], cv_by_combiner[chosen]):
                chosen = kind
        combiner = stacking.make(chosen, target.task, metric, names, options.seed).fit([oof[n] for n in names], y)
        blended = combiner.apply([oof[n] for n in names])
        decision = M.fit_decision(target.task, metric, y, blended)
        honest = nested[chosen][0]
        weights = combiner.weights if chosen == "blend" else np.ones(len(names))
        cv_score = cv_by_combiner[chosen]
        by_family = {n: metric(truth, self._values(M.fit_decision(target.task, metric, y, oof[n]).apply(oof[n]), target,
                                                   log_target, metric, as_indices=True)) for n in names}
        fold_scores = {n: [float(metric(truth[fold_of == f], self._values(
            M.fit_decision(target.task, metric, y, oof[n]).apply(oof[n][fold_of == f]), target, log_target, metric,
            as_indices=True)))
            for f in range(plan.folds)] for n in names}
        if len(kinds_tried) > 1:
            log.info("nested cv %s: %s; %s kept", metric.name,
                     ", ".join(f"{kind} {score:.5f}" for kind, score in cv_by_combiner.items()), chosen)
        log.info("%s; decision: %s", combiner.words(), decision.words())
        explain_blend(metric, cv_score, by_family, decision, chosen)

        final = {}
        for name, weight in zip(names, weights):
            if weight > 0:  # a family the blend gives nothing is not refitted
                refit_started = time.perf_counter()
                first = fold_models[name][0]
                if options.final == "bag" and hasattr(first, "bag"):
                    final[name] = first.bag(fold_models[name])
                else:
                    final[name] = first.refit(linear_frame, y, fold_models[name],
                                              **({} if row_weights is None else {"sample_weight": row_weights}))
                seconds[name] += time.perf_counter() - refit_started
                log.info("final %-8s on all %d rows %.1fs %s", name, len(y), time.perf_counter() - refit_started,
                         final[name].summary())
        if vectors is not None:
            vectors.forget()
        ensemble = M.Ensemble(final, dict(zip(names, map(float, weights))), decision, target.task,
                              combiner if chosen == "stack" else None)
        model = TabularModel(ensemble, features, target, metric, log_target, list(X.columns))
        self._write_oof(data, oof, honest, fold_of, target, log_target, run_dir)
        self._plot(truth, honest, blended, y, target, metric, log_target, run_dir)
        honest_by_fold = [float(metric(truth[fold_of == f], self._values(honest[fold_of == f], target, log_target, metric,
                                                                          as_indices=True))) for f in range(plan.folds)]
        note = (f"out-of-fold; the {'stack (level 2)' if chosen == 'stack' else 'blend weights'} and the decision for "
                f"each fold fitted on the other folds; the level-1 out-of-fold predictions it learns from come from fold "
                f"models that saw the other folds (not nested)")
        if len(kinds_tried) > 1:
            note += "; the choice of blend or stack made on both nested scores (not nested)"
        if encoded and {"lightgbm", "xgboost", "linear"} & set(names):
            note += "; target encoding fitted inside each fold on its training rows (nested)"
        if repeats > 1:
            note += f"; {repeats} repeats of the CV averaged per row, each prediction from a model that did not see the row"
        if vectors is not None:
            note += (f"; each logistic regression's C chosen by an inner {T.INNER_FOLDS}-fold CV on its outer fold's "
                     f"training rows (nested); TF-IDF vocabularies fitted on train + test text without labels (not nested)")
        if transformer is not None:
            note += TR.note(transformer)
        if row_weights is not None:
            note += f"; training rows weighted by {options.weights} (blend weights, decision and score unweighted)"
        out_of_fold = self._out_of_fold(data, honest, blended, fold_of, log_target)
        report = Report(cv_score=cv_score, fold_scores=honest_by_fold, note=note, out_of_fold=out_of_fold,
                        decisions=dict(
               task=target.task, layout=(layout.describe() if layout else "table"), models=families,
               cv_by_model={n: round(float(s), 6) for n, s in by_family.items()},
               cv_by_model_note="each model alone, its decision fitted on all its out-of-fold rows (not nested)",
               fold_scores_by_model={n: [round(s, 6) for s in scores] for n, scores in fold_scores.items()},
               blend_weights={n: round(float(w), 6) for n, w in zip(names, weights)},
               combiner=chosen, cv_by_combiner={kind: round(score, 6) for kind, score in cv_by_combiner.items()},
               stack_coefficients=combiner.described() if chosen == "stack" else None,
               repeats=repeats, target_encoded=encoded, boosted_rounds=plan.rounds,
               boosted_learning_rate=plan.boosted_learning_rate, final=options.final,
               decision={"kind": decision.kind, "temperature": round(decision.temperature, 6),
                         "threshold": round(float(decision.threshold), 6),
                         "per_class": [round(float(t), 6) for t in decision.per_class]},
               folds=plan.folds, catboost_iterations=plan.iterations, learning_rate=plan.learning_rate,
               time_budget=options.time_budget, rows=len(X), unlabelled_rows=data.train.attrs.get("unlabelled_rows", 0),
               id_column=data.id_column, targets=target.columns, sample=data.layout.source.name,
               sample_shape=data.layout.shape, test=data.layout.test.name, train=data.train_source.name,
               column_kinds=columns.kinds, family_seconds={n: round(s, 2) for n, s in seconds.items()},
               train_seconds=round(time.perf_counter() - started, 2),
               **({"transformer": TR.described(transformer)} if transformer is not None else {}),
               **({"weights_file": str(Path(options.weights).resolve()), "weights_sha256": io.sha256(options.weights)}
                  if row_weights is not None else {})))
        return model, report

    # A media run keeps its network its own way, and packages the exported network with
    # numpy/Pillow/onnxruntime inference (media_inference.py) instead of the pickle.
    def save_model(self, model, run_dir: Path) -> None:
        if isinstance(model, MD.MediaModel):
            return MD.save(model, run_dir, self.runtime_profile)
        TI.save(model, run_dir)   # a fine-tuned transformer: save_pretrained into run_dir/transformer
        return super().save_model(model, run_dir)

    def load_model(self, run_dir: Path):
        return MD.load_model(run_dir) if MD.is_media_run(run_dir) else TI.attach(super().load_model(run_dir), run_dir)

    def bundle(self, run_dir: Path, profile=None) -> tuple[str | None, tuple[str, ...]]:
        if MD.is_media_run(run_dir):
            return MD.bundle(run_dir, profile)
        entry, files = super().bundle(run_dir, profile)
        return entry, files + TI.files(run_dir)

    # --- what `compete blend` reads (issue 24): out_of_fold.csv and the test scores ---

    def _blends_labels(self, target: D.Target) -> bool:
        """A label metric's run can be blended when its labels are one 0/1 column (the blend
        pools probabilities and refits the threshold); other labels cannot be pooled."""
        return target.task == "binary" and [str(c) for c in target.classes] == ["0", "1"]

    def _out_of_fold(self, data: D.TabularData, honest, blended, fold_of, log_target: bool) -> OutOfFold | None:
        """Every training row's out-of-fold prediction in submission shape: the nested one
        the CV scores, or for a label metric the blended probability before the threshold
        (the families' weights fitted on every row). None where a blend could not use it."""
        target, metric = data.target, data.metric
        if data.id_column not in data.train.columns or (metric.output == "label" and not self._blends_labels(target)):
            return None
        ids = data.train[[data.id_column]].astype(str).reset_index(drop=True)
        scores = blended if metric.output == "label" else self._values(honest, target, log_target, metric)
        truth = self._truth(data)
        if target.class_columns:
            truth = np.eye(len(target.classes))[truth.astype(int)]
        return OutOfFold(pd.concat([ids, self._shaped(scores, target)], axis=1),
                         pd.concat([ids, self._shaped(truth, target)], axis=1), fold_of)

    @staticmethod
    def _shaped(values: np.ndarray, target: D.Target) -> pd.DataFrame:
        if target.task == "multilabel":
            return pd.DataFrame(np.asarray(values), columns=target.columns)
        if target.class_columns:
            matrix = values if np.ndim(values) == 2 else np.column_stack([1 - values, values])
            return pd.DataFrame(matrix, columns=target.class_columns)
        return pd.DataFrame({target.sample_columns[0]: np.asarray(values)})

    def test_scores(self, model: TabularModel, data: D.TabularData) -> pd.DataFrame | None:
        """For a 0/1 label metric the blended probabilities before the threshold; else None
        (the submission's values are the scores, as for a media run: media.py)."""
        if isinstance(model, MD.MediaModel) or model.metric.output != "label" or not self._blends_labels(model.target):
            return None
        X = pd.concat([model.features.trees(data.test), data.test[model.features.columns.of("text")]], axis=1)
        ids = data.test[[data.id_column]].astype(str).reset_index(drop=True)
        return pd.concat([ids, self._shaped(model.ensemble.blended(X), model.target)], axis=1)

    @staticmethod
    def _row_weights(data: D.TabularData, options: TabularOptions, families: list[str]) -> np.ndarray | None:
        """Each training row's weight from `options.weights` (a check-split file), or None."""
        if options.weights is None:
            return None
        unweighted = [name for name in families or () if name not in M.TABLE_FAMILIES]
        if unweighted:
            raise io.InputError(f"weights={options.weights}: the {', '.join(unweighted)} family takes no row weights; "
                                f"use models=catboost,lightgbm,xgboost,linear")
        if data.id_column not in data.train.columns:
            raise io.InputError(f"weights={options.weights}: {data.train_source.name} has no {data.id_column} column "
                                f"to match the weights' ids with")
        from common.adversarial import read_weights
        return read_weights(options.weights, data.train[data.id_column])

    @staticmethod
    def _refuse_constant_labels(data: D.TabularData, y: np.ndarray) -> None:
        """A 0/1 label column with one value teaches nothing (one value of a single target
        is refused when the target is read)."""
        if data.target.task == "multilabel":
            for j, column in enumerate(data.target.columns):
                if len(np.unique(y[:, j])) < 2:
                    raise io.InputError(f"{data.train_source}: label column {column!r} holds one value only, "
                                        f"{int(y[0, j])}, in all {len(y)} labelled rows")

    def _encode(self, data: D.TabularData) -> tuple[np.ndarray, bool]:
        target = data.target
        if target.task == "regression":
            y = pd.to_numeric(data.train[target.columns[0]]).to_numpy(dtype=float)
            if data.metric.output == "nonnegative":
                if (y < 0).any():
                    raise io.InputError(f"{data.train_source}: {target.columns[0]} holds negative values; "
                                        f"{data.metric.name} needs values >= 0")
                return np.log1p(y), True
            return y, False
        if target.task == "multilabel":
            return data.train[target.columns].apply(pd.to_numeric).to_numpy(dtype=int), False
        index = {value: i for i, value in enumerate(target.classes)}
        return data.train[target.columns[0]].map(index).to_numpy(dtype=int), False

    def _truth(self, data: D.TabularData) -> np.ndarray:
        target = data.target
        if target.task == "regression":
            return pd.to_numeric(data.train[target.columns[0]]).to_numpy(dtype=float)
        y, _ = self._encode(data)
        return y

    @staticmethod
    def _values(predictions: np.ndarray, target: D.Target, log_target: bool, metric: Metric, as_indices: bool = False):
        return inference.values(predictions, target, log_target, metric, as_indices)

    def adversarial_frames(self, data: D.TabularData):
        columns = F.describe(data.train, data.test, data.features)
        features = F.Features(columns, seed=0).fit(data.train, data.test)
        return tuple(pd.concat([frame[[data.id_column]].reset_index(drop=True),
                                features.trees(frame).reset_index(drop=True)], axis=1)
                     for frame in (data.train, data.test))

    def predict(self, model: TabularModel, data: D.TabularData) -> pd.DataFrame:
        if isinstance(model, MD.MediaModel):
            return MD.predict(model, data)
        return inference.predict(model, data.test, data.id_column)  # the packaged notebook's own code

    def _write_oof(self, data, oof, honest, fold_of, target, log_target, run_dir: Path) -> None:
        frame = pd.DataFrame({"fold": fold_of + 1})
        if data.id_column in data.train.columns:
            frame.insert(0, data.id_column, data.train[data.id_column].to_numpy())
        for column in target.columns:
            frame[column] = data.train[column].to_numpy()
        for name, values in {**{f"oof_{n}": v for n, v in oof.items()}, "oof_final": honest}.items():
            values = np.asarray(values)
            if target.task == "regression" and log_target:
                values = np.expm1(values)
            if values.ndim == 1:
                frame[name] = values
            else:
                labels = target.classes if target.task == "multiclass" else target.columns
                for j, label in enumerate(labels):
                    frame[f"{name}_{label}"] = values[:, j]
        io.write_csv(frame, Path(run_dir) / "oof.csv", float_format="%.6g")

    def _plot(self, truth, honest, blended, y, target, metric, log_target, run_dir: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, axis = plt.subplots(figsize=(6, 5))
        if target.task == "regression":
            predicted = self._values(honest, target, log_target, metric)
            axis.scatter(truth, predicted, s=5, alpha=0.4)
            low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
            axis.plot([low, high], [low, high], color="black", linewidth=1)
            axis.set(xlabel=f"actual {target.columns[0]}", ylabel="out-of-fold prediction")
            path = Path(run_dir) / "predicted_vs_actual.png"
        else:
            # Reliability: how often the true class is the predicted one, per confidence bin.
            probabilities = blended if blended.ndim == 2 else np.column_stack([1 - blended, blended])
            if target.task == "multilabel":
                confidence, correct = blended.ravel(), y.ravel().astype(float)
                axis.set(xlabel="predicted probability of the label", ylabel="observed frequency")
            else:
                confidence = probabilities.max(axis=1)
                correct = (probabilities.argmax(axis=1) == y).astype(float)
                axis.set(xlabel="confidence (blended out-of-fold probability)", ylabel="accuracy")
            bins = np.clip((confidence * 10).astype(int), 0, 9)
            centres = [(confidence[bins == b].mean(), correct[bins == b].mean()) for b in range(10) if (bins == b).any()]
            axis.plot(*zip(*centres), marker="o")
            axis.plot([0, 1], [0, 1], color="black", linewidth=1)
            path = Path(run_dir) / "calibration.png"
        axis.set_title(f"{self.name} out-of-fold, {metric.name}")
        figure.tight_layout()
        with io.atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=100, format="png")
        plt.close(figure)
        self._plot_labels(honest, blended, y, target, metric, run_dir)

    def _plot_labels(self, honest, blended, y, target, metric, run_dir: Path) -> None:
        """Which classes the out-of-fold predictions confuse (the submitted decision when
        the metric scores labels, else the most probable class), or each label's AUC."""
        from common import plots
        if target.task in ("binary", "multiclass"):
            if metric.output == "label":
                predicted = honest
            else:
                predicted = blended.argmax(axis=1) if blended.ndim == 2 else (blended >= 0.5).astype(int)
            plots.confusion_matrix(y, predicted, [str(c) for c in target.classes], Path(run_dir) / "confusion_matrix.png",
                                   f"{self.name} out-of-fold confusion")
        elif target.task == "multilabel":
            from sklearn.metrics import roc_auc_score
            scores = {column: float(roc_auc_score(y[:, j], blended[:, j])) for j, column in enumerate(target.columns)
                      if len(np.unique(y[:, j])) == 2}
            plots.per_label_scores(scores, Path(run_dir) / "per_label_auc.png", f"{self.name} out-of-fold AUC per label",
                                   "ROC AUC")
