"""Audio competitions through `PLATFORM:SLUG`: birdcall's synthetic Zindi folder (Train.csv
beside Train/ clips named by ID without the extension, SampleSubmission.csv with a column
per species, some clips broken) read by the generic package, which routes it to
common/sound.py's AudioModel, as a competitor's own Zindi audio challenge would be."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from competitions.tabular import media as MD


@pytest.fixture(scope="module")
def audio_run(compete, competition_data, tmp_path_factory):
    """A fast generic run on birdcall's synthetic folder, as a Kaggle audio competition."""
    data, work = competition_data("birdcall"), tmp_path_factory.mktemp("audio-run")
    out = work / "submission.csv"
    result = compete("run", "kaggle:bird-calls", "--data", data, "--fast", "--seed", 0, "--out", out,
                     "--run-dir", work / "run", cwd=work)
    return data, work / "run", out, result.output


def test_an_audio_folder_trains_end_to_end_and_beats_the_class_prior(compete, audio_run):
    data, _, out, log = audio_run
    layout = MD.recognise(data)   # its answers/ lists every clip: the labels CSV is still Train.csv
    assert (layout.kind, layout.shape, layout.labels) == ("audio", "labels-csv", "Train.csv")
    assert "audio clips:" in log and "at random" in log   # 40 species: too many for a stratified 20% hold-out
    cv = float(log.split("cv log_loss: ")[1].split()[0])
    prior = float(log.split("class-prior baseline ")[1].split()[0])
    assert cv < 0.6 * prior

    submission, sample = pd.read_csv(out), pd.read_csv(data / "SampleSubmission.csv")
    assert list(submission.columns) == list(sample.columns)
    assert submission["ID"].tolist() == sample["ID"].tolist()
    assert np.allclose(submission.drop(columns="ID").to_numpy().sum(axis=1), 1, atol=1e-4)
    scored = compete("score", "kaggle:bird-calls", out, "--answers", data / "answers", "--metric", "logloss")
    assert float(scored.stdout.split("log_loss: ")[1].split()[0]) < 0.6 * prior


def test_the_kaggle_package_of_an_audio_run_reruns_to_the_same_submission(compete, audio_run, tmp_path):
    from common.runtimes import runner
    if not runner.sandbox_available()[0]:
        pytest.skip("no sandbox here: the rerun emulation cannot run")
    data, run_dir, submission, _ = audio_run
    compete("package", "kaggle:bird-calls", "--run-dir", run_dir, "--out", tmp_path / "package")
    shipped = {path.name for path in (tmp_path / "package" / "dataset").rglob("*") if path.is_file()}
    # Kaggle's image has torch and soundfile, no onnxruntime: the TorchScript copy, no training code
    assert "audio.torchscript.pt" in shipped and "audio.onnx" not in shipped
    assert "sound_inference.py" in shipped and not {"sound.py", "spectrograms.py", "media.py"} & shipped
    result = compete("runtime", "test", tmp_path / "package", "--data", data, "--out", tmp_path / "rerun.csv")
    assert "passed on kaggle-notebook" in result.stdout
    rerun, trained = pd.read_csv(tmp_path / "rerun.csv"), pd.read_csv(submission)
    assert rerun["ID"].tolist() == trained["ID"].tolist()
    # The exported path decodes with soundfile and resamples by FFT where training used librosa and
    # soxr: clips at other rates differ a little (measured: mean 4e-4), the score hardly at all.
    assert np.abs(rerun.drop(columns="ID").to_numpy() - trained.drop(columns="ID").to_numpy()).mean() < 2e-3
    scores = [float(compete("score", "kaggle:bird-calls", file, "--answers", data / "answers", "--metric",
                            "logloss").stdout.split("log_loss: ")[1].split()[0]) for file in (tmp_path / "rerun.csv", submission)]
    assert abs(scores[0] - scores[1]) < 0.02 * scores[1]


def test_a_held_out_split_is_stratified_only_where_every_class_fits():
    y = np.repeat(np.arange(40), 4)                   # 160 clips, 40 classes
    assert not MD.stratifiable(y, "multiclass", 0.2)  # 32 held out < 40 classes
    assert MD.stratifiable(y, "multiclass", 0.25)
    assert not MD.stratifiable(np.zeros((8, 3)), "multilabel", 0.5)
    held = MD.holdout(y, "multiclass", 0.2, seed=0)
    assert held.sum() == 32 and np.array_equal(held, MD.holdout(y, "multiclass", 0.2, seed=0))
