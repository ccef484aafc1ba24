"""DrivenData "Hakuna Ma-data: Identify Wildlife on the Serengeti with AI for Earth":
camera-trap sequences, 54 labels, mean binary log loss, a code submission."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, plots
from common.competition import BaseCompetition, OutOfFold, Report
from common.metrics import MEAN_BINARY_LOG_LOSS
from common.options import Options, option
from competitions.serengeti import data as serengeti_data
from competitions.serengeti import inference
from competitions.serengeti.data import CLASSES, FILE, SUBMISSION_FORMAT, TEST_METADATA, WEIGHTS, SerengetiData

log = logging.getLogger("compete")


@dataclass
class SerengetiOptions(Options):
    minutes: float | None = option(None, "training time budget in minutes, the validated fit and the final one on every "
                                         "site together: the number of epochs is fitted to it from the measured speed "
                                         "and re-planned at each epoch's end; None: 28 (with --fast: no budget, the "
                                         "epoch cap alone, so a quick run's bytes never depend on the machine's speed)",
                                 above=0)
    refit: float = option(0.3, "share of the training budget (of the epoch cap without one) spent after the cv is "
                               "measured, training the validated network on with every site's sequences (the held-out "
                               "sites join: a quarter more data, more cameras); 0: the final model is the validated one",
                          minimum=0, maximum=0.9)
    epochs: int | None = option(None, "training epochs at most, the validated fit and the final one together (the "
                                      "final one's share by `refit`; the time budget and early stopping may end sooner); "
                                      "None: 40 (2 with --fast: 1 + 1)", minimum=1)
    backbone: Path | None = option(None, "a state dict (.pth) of weights to start from, e.g. weights/resnet50.pth "
                                         "(the head is trained anew)")
    width: int = option(32, "channels of the network's first block", minimum=1, search=(16, 64), log=True)
    stem: int = option(serengeti_data.STEM, "stride of the network's first layer (its features are the frame's size / stem)",
                     minimum=1)
    image_width: int = option(serengeti_data.IMAGE_SIZE[0], "pixels across that each frame is resized to", minimum=1)
    image_height: int = option(serengeti_data.IMAGE_SIZE[1], "pixels down that each frame is resized to", minimum=1)
    lr: float = option(3e-3, "peak learning rate (one-cycle)", above=0, search=(3e-4, 3e-2), log=True)
    batch_size: int = option(32, "sequences per training batch", minimum=1)
    balance: float = option(0.0, "0: sample sequences as they come; 1: every class as often (shard stream balancing)",
                           minimum=0, maximum=1, search=(0.0, 1.0))
    valid_share: float = option(0.25, "share of the last training season's camera sites held out for the cv: their "
                                      "last-season sequences validate and none of their sequences trains, as the hidden "
                                      "test is a later season with cameras training never saw (full scale: 3 of 12 sites)",
                                above=0, maximum=1)
    patience: int = option(8, "epochs without a better validation loss before stopping (the one-cycle peak makes a few "
                              "early epochs noisy: 4 stopped a 22-epoch full-scale run at epoch 5)", minimum=1)
    checkpoint_every: int = option(200, "batches between checkpoints (a killed run resumes from the last; "
                                 "0: at the end of each epoch only)", minimum=0)
    workers: int | None = option(None, "data loader processes; None: up to 2", minimum=0)
    threads: int | None = option(None, "torch threads while training; None: the cores the loader's worker processes "
                                       "leave (1 on 2 cores: measured 0.46 s a step with 1 thread vs 0.87 s with 2 at load "
                                       "~4); fixed by the option and the core count, never by the load, so the same seed "
                                       "gives the same bytes", minimum=1)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.image_width, self.image_height)


class Serengeti(BaseCompetition):
    name = "serengeti"
    platform = "drivendata"
    slug = "camera-trap-serengeti"
    url = "https://www.drivendata.org/competitions/59/camera-trap-serengeti"
    metric = MEAN_BINARY_LOG_LOSS
    submission = serengeti_data.SUBMISSION
    description = "DrivenData, camera-trap multi-label images, code submission"
    data_files = (serengeti_data.TRAIN_METADATA, serengeti_data.TRAIN_LABELS)
    float_format = "%.6f"
    # The code submission (common/packaging.py): the function main.py calls and the
    # run files it needs beside it, for the runtime the competition's bundles run in.
    bundle_entry = "competitions.serengeti.inference:run"
    bundle_files = (inference.MODEL, inference.META)
    runtime_profile = "hakuna-madata"
    options = SerengetiOptions

    def synth(self, out_dir: Path, seed: int, scale: str) -> None:
        from competitions.serengeti.synth import synth
        synth(out_dir, seed, scale)

    def load(self, data_dir: Path) -> serengeti_data.SerengetiData:
        return serengeti_data.load(data_dir)

    def sample(self, data_dir: Path) -> pd.DataFrame:
        if io.find(data_dir, SUBMISSION_FORMAT, required=False) is None:
            raise io.InputError(
                f"{data_dir}: no {SUBMISSION_FORMAT}. On the real competition it and {TEST_METADATA} exist only "
                f"inside DrivenData's hidden runtime: build the code submission with `compete package serengeti "
                f"--run-dir RUN --out submission.zip` and prove it with `compete runtime test submission.zip --data DIR`")
        return super().sample(data_dir)

    def fit(self, data: SerengetiData, options: SerengetiOptions, run_dir: Path):
        from competitions.serengeti import prepare, train, validate

        started = time.perf_counter()
        if data.test is None:
            log.warning("serengeti: no %s here (the real one exists only in the hidden runtime); training only", TEST_METADATA)
        prepared = prepare.prepare(data, options.seed, options.valid_share, options.image_size, quiet=options.quiet)
        ready = time.perf_counter()
        trained = train.train(data, prepared, options, run_dir)
        done = time.perf_counter()

        # Cross-validation score: the last season at sites training never saw, as at test time.
        held_out = validate.validate(trained.model, trained.prior, data, prepared, quiet=options.quiet)
        validated = time.perf_counter()
        # then the final model: the same network trained on with the held-out sites too (its cv is the one above)
        refitted = train.refit(trained, prepared, options, run_dir, started=ready)
        refit_done = time.perf_counter()
        predicted, truth = held_out.predicted[list(CLASSES)].to_numpy(), held_out.truth
        cv = self.metric(truth, predicted)
        baseline = self.metric(truth, np.tile(np.clip(trained.prior, inference.CLIP, 1 - inference.CLIP), (len(truth), 1)))
        log.info("serengeti: cv %.5f, class-prior baseline %.5f (ratio %.3f)", cv, baseline, cv / baseline)
        title = plots.cv_title("serengeti", self.metric.name, cv)
        plots.per_label_scores(validate.label_log_losses(truth, predicted), run_dir / "label_scores.png",
                               f"{title}: by label", "binary log loss on the validation sequences")
        plots.training_curves({"network": run_dir / "history.csv"}, run_dir / "training_curves.png", f"{title}: loss by epoch")
        budget = trained.budget
        report = Report(
            cv_score=cv, fold_scores=[cv],
            note=f"mean binary log loss on the validation sequences: the last training season at the held-out camera "
                 f"sites ({options.valid_share:.0%} of them; no sequence of theirs trains), each sequence read whole "
                 "(its frames and their motion)",
            decisions=dict(prior_baseline=round(baseline, 6), ratio_to_prior=round(cv / baseline, 4),
                           epochs=trained.epochs_done, epochs_asked=budget["epochs"], epochs_first_plan=budget["first_plan"],
                           epochs_most=trained.most, seconds_spent=budget.get("spent"),
                           minutes_budget=trained.minutes, threads=trained.threads, seconds_per_batch=budget["seconds_per_batch"],
                           stopped_early=trained.epochs_done < budget["epochs"],
                           train_sequences=prepared.shard_sets["train"].count, valid_sequences=len(held_out.predicted),
                           unreadable_images=prepared.unreadable, prepare_seconds=round(ready - started, 2),
                           train_seconds=round(done - ready, 2),
                           refit_epochs=refitted.epochs_done if refitted else 0,
                           refit_sequences=refitted.sequences if refitted else 0,
                           refit_seconds=round(refit_done - validated, 2) if refitted else 0,
                           out_of_fold_note="a hold-out, not K folds: out_of_fold.csv holds the validation sequences "
                                            "only, all in fold 1, predicted by the validated network before it trained "
                                            "on with every site (refit); a blend of runs made with the same seed and "
                                            "valid_share works on those rows"),
            # what a blend reads: the held-out sequences' probabilities (runs.OUT_OF_FOLD)
            out_of_fold=OutOfFold(held_out.predicted.reset_index(drop=True), held_out.truth_frame,
                                  np.zeros(len(held_out.predicted), dtype=int)))
        return (refitted or trained).model, report

    def save_model(self, model, run_dir: Path) -> None:
        model.save(Path(run_dir) / WEIGHTS)
        model.export(run_dir)

    def load_model(self, run_dir: Path):
        # torch loads here, not at import: `compete list` stays light.
        from competitions.serengeti import model as serengeti_model
        return serengeti_model.SerengetiModel.load(Path(run_dir) / WEIGHTS)

    def predict(self, model, data: SerengetiData) -> pd.DataFrame:
        from competitions.serengeti import model as serengeti_model

        if data.test is None:
            raise io.InputError(
                f"{data.root}: no {TEST_METADATA}. On the real competition the test images, {TEST_METADATA} and "
                f"{SUBMISSION_FORMAT} exist only inside DrivenData's hidden runtime: train with `compete fit serengeti` "
                f"(a model already trained lies in its run directory), then `compete package serengeti --run-dir RUN "
                f"--out submission.zip` and `compete runtime test submission.zip --data DIR`")
        root = serengeti_data.image_root(data.root, data.test[FILE].iloc[0])
        return serengeti_model.predict_folder(model, data.test, root)

