"""common.sound.AudioModel (the generic audio path's model, default settings) against the
issue's named audio baseline fitted in this script on the same log-mels: pooled log-mel
statistics + logistic regression (common.spectrograms.pooled, common.sound.fit_baseline).
Data: birdcall's synthetic corpus (40 species with confusable pairs, any rate, mono and
stereo, WAV inside .mp3, corrupt clips), scored on its test answers; an unreadable
test clip gets the training prior from both contenders.

    ratio = AudioModel's error / the baseline's   (< 1: the model is better; for
            accuracy the error is 1 - accuracy)

Usage: python bench/audio_model.py [small|full] [EPOCHS]   (default: small, the settings' epochs)
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _command import ROOT

sys.path.insert(0, str(ROOT))


def main() -> None:
    scale = sys.argv[1] if len(sys.argv) > 1 else "small"
    from common import sound, spectrograms
    from common.metrics import multiclass_log_loss
    from competitions.birdcall import data as bird_data
    from competitions.birdcall.synth import synth

    settings = sound.AudioSettings()
    if len(sys.argv) > 2:
        settings.epochs = int(sys.argv[2])
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        os.environ["COMPETE_CACHE"] = str(work / "cache")
        synth(work / "data", seed=7, scale=scale)  # seed 7: not the tests' data
        data = bird_data.load(work / "data")
        species = list(data.species)
        usable = data.train["path"].notna().to_numpy()
        train_files = list(data.train["path"][usable])
        y = data.train["label"].to_numpy()[usable]
        test_files = list(data.test["path"])
        truth = pd.read_csv(work / "data" / "answers" / "test_labels.csv").set_index("ID").loc[data.test["ID"], "common_name"]
        answers = truth.map({name: k for k, name in enumerate(species)}).to_numpy()
        print(f"{scale}: {len(train_files)} train clips, {len(test_files)} test clips, {len(species)} classes")

        started = time.perf_counter()
        mels = settings.mels()
        train_mels = spectrograms.compute(train_files, mels, quiet=True)
        readable = [i for i, m in enumerate(train_mels) if not isinstance(m, str)]
        fitted = sound.fit_baseline(np.stack([spectrograms.pooled(train_mels[i]) for i in readable]), y[readable])
        test_mels = spectrograms.compute(test_files, mels, quiet=True)
        prior = (np.bincount(y[readable], minlength=len(species)) + 1.0) / (len(readable) + len(species))
        baseline = np.tile(prior, (len(test_files), 1))
        readable_test = [i for i, m in enumerate(test_mels) if not isinstance(m, str)]
        baseline[readable_test] = sound.class_probabilities(
            fitted, np.stack([spectrograms.pooled(test_mels[i]) for i in readable_test]), len(species))
        baseline_seconds = time.perf_counter() - started

        started = time.perf_counter()
        model = sound.AudioModel("multiclass", species, settings).fit(train_files, y, work / "run", quiet=True)
        probabilities = model.predict(test_files)
        model_seconds = time.perf_counter() - started

    rows = []
    for name, p, seconds in (("pooled log-mel + logistic regression", baseline, baseline_seconds),
                             (f"AudioModel ({settings.backbone}, {settings.epochs} epochs)", probabilities, model_seconds)):
        rows.append((name, multiclass_log_loss(answers, np.clip(p, 1e-15, 1)), float((p.argmax(1) == answers).mean()), seconds))
    print(f"{'':44s} {'log loss':>9s} {'accuracy':>9s} {'seconds':>8s}")
    for name, loss, accuracy, seconds in rows:
        print(f"{name:44s} {loss:9.4f} {accuracy:9.3f} {seconds:8.1f}")
    (_, base_loss, base_accuracy, _), (_, loss, accuracy, _) = rows
    print(f"ratio log loss {loss / base_loss:.3f}, ratio error {(1 - accuracy) / max(1 - base_accuracy, 1e-9):.3f}")
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
