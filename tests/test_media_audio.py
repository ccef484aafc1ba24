"""Audio competitions through `PLATFORM:SLUG`: birdcall's synthetic Zindi folder (Train.csv
beside Train/ clips named by ID without the extension, SampleSubmission.csv with a column
per species, some clips broken) read by the generic package, which routes it to
common/sound.py's AudioModel, as a competitor's own Zindi audio challenge would be."""
from __future__ import annotations

import numpy as np
import pandas as pd

from competitions.tabular import media as MD


def test_a_zindi_audio_folder_trains_end_to_end_and_beats_the_class_prior(compete, competition_data, tmp_path):
    data = competition_data("birdcall")   # its answers/ lists every clip: the labels CSV is still Train.csv
    layout = MD.recognise(data)
    assert (layout.kind, layout.shape, layout.labels) == ("audio", "labels-csv", "Train.csv")

    out = tmp_path / "submission.csv"
    result = compete("run", "zindi:bird-calls", "--data", data, "--fast", "--seed", 0, "--out", out,
                     "--run-dir", tmp_path / "run", cwd=tmp_path)
    log = result.output
    assert "audio clips:" in log and "at random" in log   # 40 species: too many for a stratified 20% hold-out
    cv = float(log.split("cv log_loss: ")[1].split()[0])
    prior = float(log.split("class-prior baseline ")[1].split()[0])
    assert cv < 0.6 * prior

    submission, sample = pd.read_csv(out), pd.read_csv(data / "SampleSubmission.csv")
    assert list(submission.columns) == list(sample.columns)
    assert submission["ID"].tolist() == sample["ID"].tolist()
    probabilities = submission.drop(columns="ID").to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    scored = compete("score", "zindi:bird-calls", out, "--answers", data / "answers", "--metric", "logloss")
    assert float(scored.stdout.split("log_loss: ")[1].split()[0]) < 0.6 * prior


def test_a_held_out_split_is_stratified_only_where_every_class_fits():
    y = np.repeat(np.arange(40), 4)                   # 160 clips, 40 classes
    assert not MD.stratifiable(y, "multiclass", 0.2)  # 32 held out < 40 classes
    assert MD.stratifiable(y, "multiclass", 0.25)
    assert not MD.stratifiable(np.zeros((8, 3)), "multilabel", 0.5)
    held = MD.holdout(y, "multiclass", 0.2, seed=0)
    assert held.sum() == 32 and np.array_equal(held, MD.holdout(y, "multiclass", 0.2, seed=0))
