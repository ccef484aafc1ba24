"""Zindi "Fowl Escapades: Southern African Bird Call Audio Identification": 40 species
from field recordings, scored by multi-class log loss."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common import io, sound, spectrograms
from common.competition import BaseCompetition
from common.metrics import MULTICLASS_LOG_LOSS
from common.options import Options, option
from common.spectrograms import Quarantine
from competitions.birdcall import data as bird_data
from competitions.birdcall import folds as bird_folds
from competitions.birdcall import model as bird_model
from competitions.birdcall import prepare as bird_prepare
from competitions.birdcall import report as bird_report
from competitions.birdcall.data import ID, BirdData

log = logging.getLogger("compete")
_NETWORK = sound.NetworkSettings()


@dataclass
class BirdOptions(Options):
    folds: int | None = option(None, "stratified folds (one CNN each); None: 5, "
                                     "never more than the rarest species' clips", minimum=2)
    epochs: int = option(_NETWORK.epochs, "CNN epochs per fold (--fast trains no CNN)", minimum=1)
    width: int = option(_NETWORK.width, "channels of the CNN's first block; doubled per block", minimum=1)
    crop_frames: int = option(_NETWORK.crop_frames, "log-mel frames per training crop (50 a second)", minimum=1,
                              search=(64, 256), log=True)
    batch_size: int = option(_NETWORK.batch_size, "CNN batch size", minimum=1)
    lr: float = option(_NETWORK.lr, "CNN peak learning rate (one-cycle)", above=0, search=(3e-4, 3e-2), log=True)
    mixup: float = option(_NETWORK.mixup, "Beta(a, a) of fastai's MixUp; 0 turns it off", minimum=0, search=(0.0, 1.0))
    dropout: float = option(_NETWORK.dropout, "dropout before the CNN's classifier", minimum=0, below=1, search=(0.0, 0.6))
    weight_decay: float = option(_NETWORK.weight_decay, "CNN weight decay", minimum=0, search=(1e-4, 0.1), log=True)
    crop_pool: str = option(_NETWORK.crop_pool, "how a clip's crops are averaged: mean probability or geometric "
                                                 "(mean log-probability)", choices=("mean", "geometric"))

    def network(self) -> sound.NetworkSettings:
        return sound.NetworkSettings(crop_frames=self.crop_frames, width=self.width, epochs=self.epochs,
                                          batch_size=self.batch_size, lr=self.lr, mixup=self.mixup,
                                          dropout=self.dropout, weight_decay=self.weight_decay,
                                          crop_pool=self.crop_pool)


class Birdcall(BaseCompetition):
    name = "birdcall"
    platform = "zindi"
    slug = "fowl-escapades"
    metric = MULTICLASS_LOG_LOSS
    submission = bird_data.SUBMISSION
    options = BirdOptions
    description = "Zindi, bird species from field recordings (audio, 40 classes)"
    data_files = ("Train.csv", "SampleSubmission.csv")
    float_format = "%.6f"

    def load(self, data_dir: Path) -> BirdData:
        return bird_data.load(data_dir)

    def synth(self, out_dir: Path, seed: int, scale: str) -> None:
        from competitions.birdcall.synth import synth
        synth(out_dir, seed=seed, scale=scale)

    def fit(self, data: BirdData, options: BirdOptions, run_dir: Path):
        started = time.perf_counter()
        classes = len(data.species)
        clips = bird_prepare.usable_clips(data, run_dir, options.quiet)
        y = clips.y
        prior = (np.bincount(y, minlength=classes) + 1.0) / (len(y) + classes)
        log.info("birdcall: %d training clips usable, %d quarantined; %d species", len(y), clips.quarantined, classes)

        folds = bird_folds.fold_count(y, classes, options.folds)
        split, fold_of = bird_folds.stratified_folds(y, folds, options.seed)

        oof_baseline = bird_folds.baseline_oof(clips.pooled, y, split, classes, options.seed, report=options.fast)
        log.info("baseline (pooled log-mel + logistic regression): oof log loss %.4f, accuracy %.3f",
                 MULTICLASS_LOG_LOSS(y, np.clip(oof_baseline, 1e-15, 1)), float((oof_baseline.argmax(1) == y).mean()))
        final_baseline = sound.fit_baseline(clips.pooled, y, options.seed)

        networks, oof_cnn, settings = [], None, None
        if not options.fast:
            settings = options.network()
            oof_cnn, networks = bird_folds.cnn_oof(clips, split, classes, settings, run_dir, options.seed, options.quiet)

        # a bias per class beside the temperature where the CNN is in the blend (sound.fit_calibration)
        class_bias = oof_cnn is not None
        calibration = sound.fit_calibration(oof_baseline, oof_cnn, y, class_bias)
        calibrated = calibration.apply(oof_baseline, oof_cnn)
        nested = sound.nested_calibrated(oof_baseline, oof_cnn, y, fold_of, class_bias)
        log.info("calibration: cnn weight %.2f, temperature %.3f, floor %g%s", calibration.blend, calibration.temperature,
                 calibration.floor, f", class bias {min(calibration.bias):+.2f} to {max(calibration.bias):+.2f}" if calibration.bias else "")
        bird_folds.write_oof(Path(run_dir) / "oof.csv", clips, fold_of, data.species, oof_baseline, oof_cnn, calibrated)

        report = bird_report.report(data, clips, fold_of, folds, oof_baseline, oof_cnn, calibration, calibrated, nested,
                                    settings, options, time.perf_counter() - started)
        bird_report.plot(data, y, nested, report.cv_score, self.metric.name, folds, oof_cnn is not None, run_dir)
        fitted = bird_model.BirdModel(species=list(data.species), prior=prior, mel_settings=asdict(bird_prepare.MEL_SETTINGS),
                                      baseline=final_baseline, calibration=calibration,
                                      network_settings=sound.settings_dict(settings) if settings else None,
                                      networks=networks)
        return fitted, report

    def predict(self, model: bird_model.BirdModel, data: BirdData) -> pd.DataFrame:
        if list(data.species) != list(model.species):
            raise io.InputError(f"{data.source}: SampleSubmission.csv lists other species than the model was trained on")
        settings = spectrograms.MelSettings(**model.mel_settings)
        mels = spectrograms.compute(list(data.test["path"]), settings, quiet=None, desc="log-mel test")
        readable = [i for i, mel in enumerate(mels) if not isinstance(mel, str)]
        quarantine = Quarantine()
        for i, mel in enumerate(mels):
            if isinstance(mel, str):
                quarantine.add("test", data.test[ID].iloc[i], data.test["path"].iloc[i], mel + "; predicted with the class prior")
        quarantine.report()
        probabilities = np.tile(model.prior, (len(mels), 1))
        if readable:
            pooled = np.stack([spectrograms.pooled(mels[i]) for i in readable])
            base = sound.class_probabilities(model.baseline, pooled, len(model.species))
            cnn = None
            if model.networks:
                arrays = [spectrograms.normalise(mels[i].astype(np.float32)).astype(np.float16) for i in readable]
                modules, network_settings = model.network_modules()
                cnn = np.mean([sound.predict_network(m, arrays, network_settings.crop_frames, pool=network_settings.crop_pool)
                               for m in modules], axis=0)
            probabilities[readable] = model.calibration.apply(base, cnn)
        frame = pd.DataFrame(probabilities, columns=model.species)
        frame.insert(0, ID, data.test[ID].to_numpy())
        return frame

    def score(self, submission: pd.DataFrame, answers: Path) -> dict[str, float]:
        """Log loss as Zindi scores it, and accuracy (the top species right)."""
        scores = super().score(submission, answers)
        predicted = submission.set_index(self.submission.id_column)
        columns = list(predicted.columns)
        truth = self.read_answers(answers, columns).set_index(self.submission.id_column)
        values = predicted[columns].apply(pd.to_numeric).to_numpy(dtype=float)
        correct = truth.loc[predicted.index.astype(str), columns].to_numpy(dtype=float)
        scores["accuracy"] = float((correct.argmax(1) == values.argmax(1)).mean())
        return scores
