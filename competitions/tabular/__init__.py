"""Any competition on Kaggle, Zindi or DrivenData (`PLATFORM:SLUG`) shipped as a table, free
text, or a folder of images or audio beside a CSV: the format is read from the sample
submission in the data folder, the metric from `--metric` (else guessed from the sample).

load: media first (media.py: a labels CSV or class folders beside the files the sample
names), else sample (by content) -> test (same ids) -> train (the test's columns + targets)
-> task and column kinds (data.py). fit, for a table, stage by stage:
- prepare.py: column kinds, features, the target as the models learn it, the plan the
  time budget affords, target encoding (encoding.py), row weights, TF-IDF vocabularies;
- families.py: the model families by name (CatBoost, LightGBM, XGBoost, the linear model
  of model.py; TF-IDF logistic regression and NB-SVM of text.py when free text dominates
  the columns, and a fine-tuned transformer when `--set backbone=` names one:
  transformer.py), the one place a family is registered;
- train.py: K-fold out-of-fold CV of each family, then the final models; schedule.py cuts
  the CV to the time budget as it runs when the machine is slower than the plan;
- combine.py: a blend or a level-2 stack (stack.py) of the out-of-fold predictions, each
  in nested CV, and the decision the metric asks for (labels from an OOF threshold,
  calibrated probabilities, a log target);
- out_of_fold.py, figures.py, report.py: oof.csv and what a blend reads, the plots, the Report.
Images and audio train one network on a held-out split (media.py, common/vision.py,
common/sound.py). scoring.py scores a submission against answers.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from common import io
from common import metrics as metric_table
from common.competition import BaseCompetition
from common.metrics import Metric
from common.options import option
from common.submission import DOMAIN_OF_OUTPUT, SubmissionFormat
from competitions.tabular import combine, families, figures, inference, out_of_fold, prepare, report, scoring, train
from competitions.tabular import data as D
from competitions.tabular import encoding as E
from competitions.tabular import features as F
from competitions.tabular import media as MD
from competitions.tabular import model as M
from competitions.tabular import text as T
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
                                       "the data's shape, cut while the CV runs if the machine is slower", above=0)
    models: str = option("auto", "the families to cross-validate and combine; auto: tfidf,nbsvm when free text "
                                 "dominates (text.py), and transformer when backbone names one (transformer.py), else catboost,lightgbm,xgboost,linear,extratrees,svm,knn,spline as the budget affords "
                                 "(model.plan)",
                         choices=("auto", *_subsets(M.TABLE_FAMILIES), "linear,catboost", "tfidf,nbsvm", "tfidf", "nbsvm",
                                  "tfidf,nbsvm,transformer", "tfidf,transformer", "nbsvm,transformer", "transformer"))
    iterations: int = option(0, "CatBoost's maximum rounds; 0: as many as the budget affords", minimum=0)
    learning_rate: float | None = option(None, "CatBoost's learning rate; None: sized with its rounds from the budget",
                                         above=0, search=(0.01, 0.3), log=True)
    depth: int = option(6, "CatBoost tree depth", minimum=1, maximum=16, search=(3, 10))
    leaves: int | None = option(None, "LightGBM's leaves a tree; None: from the rows (model.leaves_for: 31, up to "
                                      "127 on a few hundred thousand)", minimum=2, maximum=1024, search=(8, 128), log=True)
    bags: int | None = option(None, "times the K-fold CV runs on other splits (K x bags models averaged per "
                                    "family); None: as many (up to 10) as the budget affords", minimum=1, maximum=10,
                              search=(1, 3))
    combiner: str = option("auto", "how the families' out-of-fold predictions combine: blend (non-negative weights), "
                                   "stack (ridge / logistic level 2), auto: the better in nested CV",
                           choices=("auto", "blend", "stack"))
    encode_above: int = option(E.ENCODE_ABOVE, "distinct values above which a categorical is target-encoded out of "
                                               "fold for the families that read numbers (model.TARGET_ENCODED: all "
                                               "but CatBoost, which reads it natively)", minimum=1,
                               search=(5, 200), log=True)
    final: str = option("bag", "each boosted family's final model: bag (its fold models' mean) or refit (CatBoost "
                               "once more on every row)", choices=("bag", "refit"))
    # row weights (issue 24): the file `compete check-split --weights` writes
    weights: Path | None = option(None, "a table: a CSV of id,weight (`compete check-split --weights`), the table families "
                                        "train on the rows weighted by it, the CV score stays unweighted; media: the "
                                        "backbone's pretrained weights, a local state dict (.pth) or .safetensors file, "
                                        "the body then fine-tuned at a tenth of the head's rate")


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
    def metric_for(self, data: D.TabularData | MD.MediaData, model=None) -> Metric:
        if isinstance(model, MD.MediaModel):
            return metric_table.resolve(model.metric, model.meta["task"])
        return model.metric if model is not None else data.metric  # what the model was fitted to score, whatever --metric says now

    def submission_for(self, data: D.TabularData | MD.MediaData, model=None):
        if isinstance(model, MD.MediaModel):
            return MD.submission_format(model.meta, self.metric_for(data, model))
        return table_format(data, model.metric) if model is not None else data.submission

    def load(self, data_dir: Path) -> D.TabularData | MD.MediaData:
        given = metric_table.resolve(self.metric_name) if self.metric_name else None
        layout = MD.recognise(Path(data_dir))
        if layout is not None:   # images or audio beside a CSV: media.py
            data = MD.load(Path(data_dir), layout, given)
            metric = metric_table.resolve(MD.metric_name(data, self.metric_name), data.target.task)
            return dataclasses.replace(data, metric=metric, submission=MD.submission_format(data, metric))
        data = D.load(Path(data_dir), given)
        T.refuse_empty(data.train, data.test, data.features, data.train_source.name, data.layout.test.name)
        name = self.metric_name or D.guess_metric(data.target, data.sample)
        if self.metric_name is None:
            log.info("%s: no --metric given; %s guessed from the sample (pass --metric to choose)", self.name, name)
        metric = metric_table.resolve(name, data.target.task)
        return dataclasses.replace(data, metric=metric, submission=table_format(data, metric))

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
        """The metric against the truth in submission shape (scoring.py)."""
        id_column, value_columns = str(submission.columns[0]), [str(c) for c in submission.columns[1:]]
        if self.metric_name is None:
            raise io.InputError(f"{self.name}: scoring needs the metric: pass --metric (e.g. {', '.join(metric_table.NAMES)})")
        truth = self.read_answers(answers, value_columns, self.file_format(submission)).astype({id_column: str}).set_index(id_column)
        predicted = submission.astype({id_column: str}).set_index(id_column)
        absent = predicted.index.difference(truth.index)
        if len(absent):
            raise io.InputError(f"{answers}: no answer for id {absent[0]} ({len(absent)} ids in all)")
        return scoring.score(truth.loc[predicted.index, value_columns], predicted[value_columns], self.metric_name)

    def fit(self, data: D.TabularData | MD.MediaData, options: TabularOptions, run_dir: Path):
        if isinstance(data, MD.MediaData):   # `weights` is the backbone's pretrained weights there (MediaOptions)
            return MD.fit(self, data, options, run_dir)
        started = time.perf_counter()
        target, metric = data.target, data.metric
        prepared = prepare.prepare(data, options, self.name)
        makers = families.makers(prepared, target.task, metric, options.seed)
        crossed = train.cross_validate(data, prepared, makers, options, self.name, started)
        combined = combine.combine(crossed.oof, crossed.fold_of, prepared.y, prepared.truth, target, metric,
                                   prepared.log_target, options.combiner, options.seed)
        final, seconds = train.refit(crossed, combined.weights, prepared, options)
        ensemble = M.Ensemble(final, combined.weights, combined.decision, target.task,
                              combined.combiner if combined.chosen == "stack" else None)
        model = TabularModel(ensemble, prepared.features, target, metric, prepared.log_target, list(prepared.X.columns))
        out_of_fold.write(data, crossed.oof, combined.honest, crossed.fold_of, prepared.log_target, run_dir)
        figures.plot(self.name, combined.cv_score, prepared.truth, combined.honest, combined.blended, prepared.y, target,
                     metric, prepared.log_target, run_dir)
        rows = out_of_fold.for_blend(data, combined.honest, combined.blended, crossed.fold_of, prepared.truth,
                                     prepared.log_target)
        return model, report.report(data, options, prepared, combined, crossed.repeats, seconds, rows, started,
                                    crossed.cuts)

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

    def test_scores(self, model: TabularModel, data: D.TabularData) -> pd.DataFrame | None:
        """For a 0/1 label metric the blended probabilities before the threshold; else None
        (the submission's values are the scores, as for a media run: media.py)."""
        return None if isinstance(model, MD.MediaModel) else out_of_fold.test_scores(model, data)

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


def table_format(data: D.TabularData, metric: Metric) -> SubmissionFormat:
    """The submission format of a table's folder: the domain follows the metric."""
    return inference.submission_format(data.target, metric, data.layout.source.name, data.id_column)
