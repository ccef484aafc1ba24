"""Birdcall: synthetic files exactly as Zindi ships them, dirt included; the command line
end to end on small data; the CNN path through the shared trainer; input errors."""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest

from common import media
from competitions import REGISTRY
from competitions.birdcall import data as bird_data
from competitions.birdcall.synth import synth


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def private_cache(cache, monkeypatch):
    monkeypatch.setenv("COMPETE_CACHE", str(cache))


@pytest.fixture(scope="module")
def small(competition_data):
    return competition_data("birdcall")


def digest(folder):
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


def test_synth_writes_zindi_files_with_dirt_and_answers(small):
    train = pd.read_csv(small / "Train.csv", dtype=str)
    sample = pd.read_csv(small / "SampleSubmission.csv", dtype=str)
    assert list(train.columns) == ["ID", "common_name"]
    assert list(sample.columns) == ["ID"] + bird_data.SPECIES and len(bird_data.SPECIES) == 40
    assert set(train["common_name"]) == set(bird_data.SPECIES)
    ids = pd.concat([train["ID"], sample["ID"]])
    assert ids.is_unique and all(re.fullmatch(r"[A-Z0-9]{6}", i) for i in ids)
    assert {p.stem for p in (small / "Train").iterdir()} == set(train["ID"])
    assert {p.stem for p in (small / "Test").iterdir()} == set(sample["ID"])
    assert all(p.suffix == ".mp3" for p in (small / "Train").iterdir())
    # a third of each species in test, rows not grouped by species
    assert len(sample) == 80 and len(train) == 160
    assert (train["common_name"] != train["common_name"].shift()).mean() > 0.8
    solution = pd.read_csv(small / "answers" / "solution.csv")
    assert list(solution.columns) == ["ID"] + bird_data.SPECIES and (solution[bird_data.SPECIES].sum(axis=1) == 1).all()
    # the dirt: WAV bytes behind .mp3 names, files that are not audio, mixed rates and channels
    kinds = [media.sniff_file(p) for p in sorted((small / "Train").iterdir())]
    assert "wav" in kinds and "mp3" in kinds and {"html", "empty", "unknown"} & set(kinds)
    clips = pd.read_csv(small / "answers" / "clips.csv", keep_default_na=False)
    assert clips["sample_rate"].nunique() >= 4 and set(clips["channels"]) == {1, 2}
    fatal = clips[clips["dirt"].isin(["html", "empty", "random_bytes", "truncated_empty"])]
    assert set(fatal["split"]) == {"train", "test"}


def test_synth_is_deterministic(small, tmp_path):
    synth(tmp_path / "again", seed=0, scale="small")
    assert digest(tmp_path / "again") == digest(small)


@pytest.mark.slow
def test_fast_run_plots_gives_unreadable_clips_the_prior_and_beats_a_uniform_guess(compete, fast_run, small):
    run = fast_run("birdcall")   # run, validate and same bytes are the contract suite's (tests/test_contract.py)
    out = run.submission
    printed = run.stdout.split("cv log_loss: ")[1].split()[0]
    from PIL import Image
    with Image.open(run.run_dir / "confusion_matrix.png") as plot:  # the plot claims the score the run printed
        assert f"cv log_loss {printed}" in plot.text["Title"]
    submission = pd.read_csv(out)
    assert list(submission.columns) == ["ID"] + bird_data.SPECIES
    values = submission[bird_data.SPECIES].to_numpy()
    assert np.allclose(values.sum(axis=1), 1, atol=1e-4) and (values > 0).all()

    # the unreadable test clips got the class prior; the unreadable train clips are reported
    clips = pd.read_csv(small / "answers" / "clips.csv", keep_default_na=False)
    bad_test = clips[(clips["split"] == "test") & clips["dirt"].isin(["html", "empty", "random_bytes", "truncated_empty"])]["ID"]
    train = pd.read_csv(small / "Train.csv")
    quarantine = pd.read_csv(run.run_dir / "quarantine.csv")
    usable = train[~train["ID"].isin(quarantine["ID"])]
    prior = (usable["common_name"].value_counts().reindex(bird_data.SPECIES, fill_value=0) + 1) / (len(usable) + 40)
    for clip in bad_test:
        row = submission.set_index("ID").loc[clip, bird_data.SPECIES].to_numpy(dtype=float)
        assert np.allclose(row, prior.to_numpy(), atol=1e-5)
    bad_train = clips[(clips["split"] == "train") & clips["dirt"].isin(["html", "empty", "random_bytes", "truncated_empty"])]
    assert set(quarantine["ID"]) == set(bad_train["ID"]) and quarantine["reason"].str.len().min() > 5
    unusable = json.loads((run.run_dir / "metrics.json").read_text())["unusable_rows"]["Train.csv"]
    assert unusable["clip_unreadable"] == len(bad_train)  # counted by kind in metrics.json too

    scored = compete("score", "birdcall", out, "--answers", small / "answers").stdout
    figures = dict(line.split(": ") for line in scored.strip().splitlines())
    assert set(figures) == {"log_loss", "accuracy"}
    assert float(figures["log_loss"]) < 2.5 < np.log(40)  # better than a uniform guess
    assert float(figures["accuracy"]) > 0.3


def test_cnn_trains_through_the_shared_trainer_and_blends(small, tmp_path):
    from common import runs
    competition = REGISTRY.competition("birdcall")
    from common import callbacks
    config = competition.options(seed=0, quiet=True, folds=2, epochs=1, width=8, crop_frames=64)
    heard = []
    with callbacks.listening(lambda step, value: heard.append((step, value))):   # as tune's pruner listens
        result = runs.run(competition, small, config, out=tmp_path / "sub.csv", run_dir=tmp_path / "run")
    metrics = runs.read_metrics(tmp_path / "run")
    assert metrics["model"] == "cnn+baseline" and "cv_cnn_log_loss" in metrics
    # each CNN fold's figure (the folds so far): after the last, the CNN's own out-of-fold log loss
    assert [step for step, _ in heard] == [0, 1] and heard[-1][1] == pytest.approx(metrics["cv_cnn_log_loss"], abs=1e-6)
    # what `compete blend` reads: every usable clip's nested probabilities, a column per species, one-hot truth
    oof = pd.read_csv(tmp_path / "run" / "out_of_fold.csv")
    species = list(pd.read_csv(small / "SampleSubmission.csv", nrows=0).columns[1:])
    assert oof.columns.tolist() == ["ID", "fold", *species, *(f"truth:{name}" for name in species)]
    assert set(oof["fold"]) == {1, 2} and (oof[[f"truth:{name}" for name in species]].sum(axis=1) == 1).all()
    assert REGISTRY.competition("birdcall").metric(oof[[f"truth:{n}" for n in species]].to_numpy(), oof[species].to_numpy()) == \
        pytest.approx(metrics["cv_score"], abs=1e-5)
    assert "not nested: each fold's CNN keeps its epoch" in metrics["cv_score_note"]  # what the CV leaves unnested is said
    assert len(metrics["calibration"]["class_bias"]) == len(species)   # the blend's offset per species, kept in the model
    assert competition.load_model(tmp_path / "run").calibration.bias == pytest.approx(metrics["calibration"]["class_bias"], abs=1e-4)
    assert (tmp_path / "run" / "cnn" / "fold1" / "history.csv").is_file()
    from PIL import Image
    with Image.open(tmp_path / "run" / "training_curves.png") as plot:  # curves of both folds, titled with the cv
        assert f"cv log_loss {metrics['cv_score']:.5f}" in plot.text["Title"]
    assert (tmp_path / "run" / "cnn" / "fold2" / "checkpoints" / "best.pth").is_file()
    model = competition.load_model(tmp_path / "run")
    assert len(model.networks) == 2
    assert not competition.validate(pd.read_csv(result.submission, dtype=str), small)


def test_cnn_path_is_reproducible_whatever_state_torch_starts_in(small, tmp_path):
    # torch seeds each process at random: the network's weights must not depend on it
    import torch

    from common import runs
    competition = REGISTRY.competition("birdcall")
    config = competition.options(seed=0, quiet=True, folds=2, epochs=1, width=8, crop_frames=64)
    submissions = []
    for attempt in (1, 2):
        torch.manual_seed(attempt)
        result = runs.run(competition, small, config, out=tmp_path / f"sub{attempt}.csv", run_dir=tmp_path / f"run{attempt}")
        submissions.append(result.submission.read_bytes())
    assert submissions[0] == submissions[1]
    assert (tmp_path / "run1" / "oof.csv").read_bytes() == (tmp_path / "run2" / "oof.csv").read_bytes()


def test_zipped_clip_folders_load_like_loose_ones(small, tmp_path):
    data = tmp_path / "zipped"
    data.mkdir()
    for name in ("Train.csv", "SampleSubmission.csv"):
        shutil.copy(small / name, data / name)
    for folder in ("Train", "Test"):
        with zipfile.ZipFile(data / f"{folder}.zip", "w") as archive:
            for path in sorted((small / folder).iterdir()):
                archive.write(path, f"{folder}/{path.name}")
    loaded = bird_data.load(data)
    assert loaded.train["path"].notna().all() and loaded.test["path"].notna().all()
    assert loaded.train["path"].iloc[0].read_bytes() == (small / "Train" / loaded.train["path"].iloc[0].name).read_bytes()


def test_an_unknown_species_is_one_line_naming_the_row(compete, small, tmp_path):
    data = tmp_path / "bad"
    shutil.copytree(small, data, ignore=shutil.ignore_patterns("Train", "Test", "answers"))
    train = pd.read_csv(data / "Train.csv")
    train.loc[5, "common_name"] = "Dodo"
    train.to_csv(data / "Train.csv", index=False)
    result = compete("run", "birdcall", "--data", data, "--fast", check=False, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {data / 'Train.csv'}: row 7 (ID {train.loc[5, 'ID']}): common_name 'Dodo' is not a column of SampleSubmission.csv"]


def test_pooled_time_statistics_tell_sweep_direction_and_pulse_rate_apart():
    # What a clip-averaged spectrum cannot: an up-sweep from its mirror, 6.25 Hz pulses from 12.5 Hz
    from common import spectrograms as features
    from competitions.birdcall.prepare import MEL_SETTINGS
    rate = MEL_SETTINGS.sample_rate
    t = np.arange(int(4 * rate)) / rate
    noise = 0.003 * np.random.default_rng(0).standard_normal(len(t))
    heard = lambda wave: features.normalise(features.log_mel((wave + noise).astype(np.float32), MEL_SETTINGS).astype(np.float32))  # noqa: E731

    within = t % 0.4  # a 0.3 s call every 0.4 s
    def calls(start, end):
        frequency = np.where(within < 0.3, start + (end - start) * within / 0.3, 0)
        return np.sin(2 * np.pi * np.cumsum(frequency) / rate) * (within < 0.3)
    up, down = heard(calls(1500, 3000)), heard(calls(3000, 1500))
    assert np.abs(features.spectrum(up) - features.spectrum(down)).max() < 0.2  # the spectrum barely differs
    overall = MEL_SETTINGS.n_mels - 1   # the structure-tensor term of all bands, after one per band pair
    first_lag = overall + 1 + features.SWEEP_GROUPS   # the first lag's rising-against-falling share, all bands
    up, down = features.sweep(up), features.sweep(down)
    assert up[overall] < 0 < down[overall]
    assert up[first_lag] > 0 > down[first_lag]

    def pulses(hz):  # a 2.5 kHz trill, 0.8 s on and 0.8 s off
        return features.rhythm(heard(np.sin(2 * np.pi * 2500 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * hz * t)) ** 2 * (t % 1.6 < 0.8)))
    slow, fast = pulses(6.25), pulses(12.5)
    bins = features.RHYTHM_BINS
    assert np.argmax(slow[:bins]) < np.argmax(fast[:bins])   # the modulation spectrum peaks at the pulse rate
    assert np.abs(slow[bins:] - fast[bins:]).max() > 0.3       # and the autocorrelations differ

    def phrased(calls):  # 0.15 s calls 0.15 s apart, `calls` to a phrase, phrases 1.2 s apart
        within = t % (calls * 0.3 + 1.2)
        return features.phrases(heard(np.sin(2 * np.pi * 2000 * t) * ((within % 0.3) < 0.15) * (within < calls * 0.3)))
    two, five = phrased(2), phrased(5)
    assert np.exp(two[0]) - 1 == pytest.approx(2, abs=0.5) and np.exp(five[0]) - 1 == pytest.approx(5, abs=0.5)  # calls a phrase
    assert five[2] > two[2] + 0.5                             # and the phrase lasts longer


def test_the_baseline_reports_each_fold_when_it_is_the_model():
    """--fast trains the baseline alone: tune's pruner hears the log loss of the folds so
    far after each fold; with the CNN to come the baseline keeps quiet (the CNN reports)."""
    from common import callbacks
    from competitions.birdcall.folds import baseline_oof, stratified_folds
    from common.metrics import MULTICLASS_LOG_LOSS
    generator = np.random.default_rng(0)
    y = np.arange(90) % 3
    pooled = generator.normal(size=(90, 6)) + y[:, None]
    split, fold_of = stratified_folds(y, 3, seed=0)
    heard = []
    with callbacks.listening(lambda step, value: heard.append((step, value))):
        oof = baseline_oof(pooled, y, split, 3, seed=0, report=True)
        baseline_oof(pooled, y, split, 3, seed=0)
    assert [step for step, _ in heard] == [0, 1, 2]
    first = fold_of == 0
    assert heard[0][1] == pytest.approx(MULTICLASS_LOG_LOSS(y[first], np.clip(oof[first], 1e-15, 1)))
    assert heard[2][1] == pytest.approx(MULTICLASS_LOG_LOSS(y, np.clip(oof, 1e-15, 1)))

