"""Zindi "Fowl Escapades: Southern African Bird Call Audio Identification": 40 species
from field recordings, scored by multi-class log loss."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.competition import BaseCompetition, Config, register
from common.metrics import MULTICLASS_LOG_LOSS
from common.runs import record
from common.submission import SubmissionFormat
from competitions.birdcall import data as D
from competitions.birdcall import features as F
from competitions.birdcall import model as M
from competitions.birdcall.audio import Quarantine

log = logging.getLogger("compete")


@register
class Birdcall(BaseCompetition):
    name = "birdcall"
    platform = "zindi"
    slug = "fowl-escapades"
    metric = MULTICLASS_LOG_LOSS
    submission = SubmissionFormat("SampleSubmission.csv", id_column=D.ID, domain="probability")
    description = "Zindi, bird species from field recordings (audio, 40 classes)"
    data_files = ("Train.csv", "SampleSubmission.csv")
    float_format = "%.6f"

    def load(self, data_dir: Path) -> D.BirdData:
        return D.load(data_dir)

    def synth(self, out_dir: Path, seed: int, scale: str) -> None:
        from competitions.birdcall.synth import synth
        synth(out_dir, seed=seed, scale=scale)

    def fit(self, data: D.BirdData, config: Config, run_dir: Path) -> M.BirdModel:
        started = time.perf_counter()
        options = config.options
        classes = len(data.species)
        mels = F.compute(list(data.train["path"]), quiet=config.quiet, desc="log-mel train")
        quarantine = Quarantine()
        usable = []
        for row, mel in zip(data.train.itertuples(), mels):
            if isinstance(mel, str):
                quarantine.add("train", row.ID, row.path, mel)
            else:
                usable.append(row.Index)
        quarantine.report(run_dir)
        train = data.train.loc[usable].reset_index(drop=True)
        arrays = [F.normalise(mels[i].astype(np.float32)).astype(np.float16) for i in usable]
        y = train["label"].to_numpy()
        keys = [F.file_hash(p) for p in train["path"]]
        prior = (np.bincount(y, minlength=classes) + 1.0) / (len(y) + classes)
        log.info("birdcall: %d training clips usable, %d quarantined; %d species", len(y), len(quarantine), classes)

        from sklearn.model_selection import StratifiedKFold
        smallest = int(np.bincount(y, minlength=classes)[np.bincount(y, minlength=classes) > 0].min())
        # Three folds for the CNN (one network per fold, averaged at test time); five for
        # the baseline alone, which costs seconds.
        folds = int(options.get("folds", max(2, min(5 if config.fast else 3, smallest))))
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
        split = list(splitter.split(np.zeros(len(y)), y))
        fold_of = np.zeros(len(y), dtype=int)
        for fold, (_, valid) in enumerate(split):
            fold_of[valid] = fold

        pooled = np.stack([F.pooled(mels[i]) for i in usable])
        oof_baseline = np.zeros((len(y), classes))
        for fold, (fit_rows, valid) in enumerate(split):
            fitted = M.fit_baseline(pooled[fit_rows], y[fit_rows], config.seed)
            oof_baseline[valid] = M.class_probabilities(fitted, pooled[valid], classes)
        baseline_score = MULTICLASS_LOG_LOSS(y, np.clip(oof_baseline, 1e-15, 1))
        log.info("baseline (pooled log-mel + logistic regression): oof log loss %.4f, accuracy %.3f",
                 baseline_score, float((oof_baseline.argmax(1) == y).mean()))
        final_baseline = M.fit_baseline(pooled, y, config.seed)

        networks, oof_cnn, settings = [], None, None
        if not config.fast:
            settings = M.NetworkSettings(**options.get("network", {}))
            oof_cnn = np.zeros((len(y), classes))
            for fold, (fit_rows, valid) in enumerate(split):
                fold_started = time.perf_counter()
                module = M.train_network(
                    [arrays[i] for i in fit_rows], y[fit_rows], [keys[i] for i in fit_rows],
                    [arrays[i] for i in valid], y[valid], [keys[i] for i in valid],
                    classes, settings, Path(run_dir) / "cnn" / f"fold{fold + 1}", config.seed + fold, config.quiet)
                oof_cnn[valid] = M.predict_network(module, [arrays[i] for i in valid], settings.crop_frames)
                networks.append(M.state_dict(module))
                log.info("cnn fold %d/%d: log loss %.4f, accuracy %.3f (%.0f s)", fold + 1, folds,
                         MULTICLASS_LOG_LOSS(y[valid], np.clip(oof_cnn[valid], 1e-15, 1)),
                         float((oof_cnn[valid].argmax(1) == y[valid]).mean()), time.perf_counter() - fold_started)

        calibration = M.fit_calibration(oof_baseline, oof_cnn, y)
        calibrated = calibration.apply(oof_baseline, oof_cnn)
        cv_score = M.nested_score(oof_baseline, oof_cnn, y, fold_of)
        log.info("calibration: cnn weight %.2f, temperature %.3f, floor %g", calibration.blend, calibration.temperature, calibration.floor)

        oof = pd.DataFrame({D.ID: train[D.ID], "fold": fold_of + 1, D.LABEL: train[D.LABEL]})
        oof["baseline_p_true"] = oof_baseline[np.arange(len(y)), y]
        if oof_cnn is not None:
            oof["cnn_p_true"] = oof_cnn[np.arange(len(y)), y]
        oof["p_true"] = calibrated[np.arange(len(y)), y]
        oof["predicted"] = [data.species[i] for i in calibrated.argmax(1)]
        io.write_csv(oof, Path(run_dir) / "oof.csv", float_format="%.6f")
        figures = {
            "metric": self.metric.name,
            "cv_score": round(cv_score, 6),
            "cv_score_note": "nested: blend weight, temperature and floor for each fold fitted on the other folds' OOF",
            "cv_accuracy": round(float((calibrated.argmax(1) == y).mean()), 6),
            "cv_baseline_log_loss": round(baseline_score, 6),
            "cv_baseline_accuracy": round(float((oof_baseline.argmax(1) == y).mean()), 6),
            "calibration": {"cnn_weight": calibration.blend, "temperature": round(calibration.temperature, 6), "floor": calibration.floor},
            "folds": folds, "train_clips": len(data.train), "usable_clips": len(y), "quarantined_train": len(quarantine),
            "model": "baseline" if config.fast else "cnn+baseline",
            "train_seconds": round(time.perf_counter() - started, 2),
        }
        if oof_cnn is not None:
            figures["cv_baseline_calibrated_log_loss"] = round(M.nested_score(oof_baseline, None, y, fold_of), 6)
            figures["cv_cnn_log_loss"] = round(MULTICLASS_LOG_LOSS(y, np.clip(oof_cnn, 1e-15, 1)), 6)
            figures["cv_cnn_accuracy"] = round(float((oof_cnn.argmax(1) == y).mean()), 6)
            figures["network"] = M.settings_dict(settings)
        record(run_dir, **figures)
        return M.BirdModel(species=list(data.species), prior=prior, mel_settings=M.asdict(F.SETTINGS),
                           baseline=final_baseline, calibration=calibration,
                           network_settings=M.settings_dict(settings) if settings else None, networks=networks)

    def predict(self, model: M.BirdModel, data: D.BirdData) -> pd.DataFrame:
        if list(data.species) != list(model.species):
            raise io.InputError(f"{data.source}: SampleSubmission.csv lists other species than the model was trained on")
        settings = F.MelSettings(**model.mel_settings)
        mels = F.compute(list(data.test["path"]), settings, quiet=None, desc="log-mel test")
        readable = [i for i, mel in enumerate(mels) if not isinstance(mel, str)]
        quarantine = Quarantine()
        for i, mel in enumerate(mels):
            if isinstance(mel, str):
                quarantine.add("test", data.test[D.ID].iloc[i], data.test["path"].iloc[i], mel + "; predicted with the class prior")
        quarantine.report()
        probabilities = np.tile(model.prior, (len(mels), 1))
        if readable:
            pooled = np.stack([F.pooled(mels[i]) for i in readable])
            base = M.class_probabilities(model.baseline, pooled, len(model.species))
            cnn = None
            if model.networks:
                arrays = [F.normalise(mels[i].astype(np.float32)).astype(np.float16) for i in readable]
                modules, network_settings = model.network_modules()
                cnn = np.mean([M.predict_network(m, arrays, network_settings.crop_frames) for m in modules], axis=0)
            probabilities[readable] = model.calibration.apply(base, cnn)
        frame = pd.DataFrame(probabilities, columns=model.species)
        frame.insert(0, D.ID, data.test[D.ID].to_numpy())
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
