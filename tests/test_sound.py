"""The generic audio model (common.sound.AudioModel): tiny planted data sets it must
learn, every container and rate it must read, and its ONNX export agreeing with torch."""
from __future__ import annotations

import numpy as np
import pytest

from common import media, sound, spectrograms

RATE = 16000
TONES = (600.0, 1800.0, 4200.0)  # one per class: the planted signal


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("COMPETE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def clip(rng, present, seconds=1.0, rate=RATE):
    """Noise with a short tone burst at a random time for each class in `present`."""
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.05 * rng.standard_normal(len(t))
    for k in present:
        start = rng.uniform(0, seconds - 0.3)
        inside = (t >= start) & (t < start + 0.3)
        wave += 0.4 * np.sin(2 * np.pi * TONES[k] * t) * inside
    return wave.astype(np.float32)


def write_clips(folder, rng, labels, kind="wav"):
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number, present in enumerate(labels):
        path = folder / f"clip{number:03d}.{kind}"
        media.write_audio(path, clip(rng, present), RATE, kind)
        files.append(path)
    return files


TINY = sound.AudioSettings(clip_seconds=0.64, epochs=3, width=4, batch_size=16, lr=1e-2, seed=0)


def test_multiclass_model_beats_the_prior(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(36) % 3
    y_test = np.arange(18) % 3
    files = write_clips(tmp_path / "train", rng, [[k] for k in y])
    test = write_clips(tmp_path / "test", rng, [[k] for k in y_test])
    model = sound.AudioModel("multiclass", ["low", "mid", "high"], TINY).fit(files, y, tmp_path / "run", quiet=True)
    p = model.predict(test)
    assert p.shape == (18, 3) and np.allclose(p.sum(axis=1), 1)
    log_loss = -np.mean(np.log(p[np.arange(18), y_test]))
    assert log_loss < 0.8 * np.log(3)         # the prior of balanced classes scores log 3
    assert (p.argmax(axis=1) == y_test).mean() > 0.7
    assert (tmp_path / "run" / "history.csv").is_file()  # trained through the shared trainer


def test_multilabel_model_beats_the_prior(tmp_path):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(48, 3))
    y_test = rng.integers(0, 2, size=(24, 3))
    files = write_clips(tmp_path / "train", rng, [np.flatnonzero(row) for row in y])
    test = write_clips(tmp_path / "test", rng, [np.flatnonzero(row) for row in y_test])
    settings = sound.AudioSettings(**{**TINY.__dict__, "epochs": 5, "mixup": 0.0})
    model = sound.AudioModel("multilabel", ["low", "mid", "high"], settings).fit(files, y, tmp_path / "run", quiet=True)
    p = np.clip(model.predict(test), 1e-6, 1 - 1e-6)
    assert p.shape == (24, 3)

    def bce(q):
        return float(-np.mean(y_test * np.log(q) + (1 - y_test) * np.log(1 - q)))
    assert bce(p) < 0.8 * bce(np.tile(model.prior, (24, 1)))
    assert ((p > 0.5) == y_test).mean() > 0.75


def test_binary_predicts_the_second_class_and_an_unreadable_clip_gets_the_prior(tmp_path, caplog):
    rng = np.random.default_rng(2)
    y = np.arange(24) % 2
    files = write_clips(tmp_path / "train", rng, [[k] for k in y])
    broken = tmp_path / "train" / "broken.wav"
    broken.write_bytes(b"<html>503</html>")
    settings = sound.AudioSettings(**{**TINY.__dict__, "epochs": 2})
    model = sound.AudioModel("binary", ["no", "yes"], settings).fit(files + [broken], np.append(y, 1), tmp_path / "run", quiet=True)
    assert "broken.wav" in (tmp_path / "run" / "quarantine.csv").read_text()  # left out of training, by name
    p = model.predict([files[0], broken])
    assert p.shape == (2,)
    assert p[1] == pytest.approx(model.prior[1])
    import pickle
    assert np.array_equal(pickle.loads(pickle.dumps(model)).predict([files[0], broken]), p)  # saved as a run saves it

    # a caller's own held-out clips (a CV fold): nothing else held out, the blend fitted on them
    fold = sound.AudioModel("binary", ["no", "yes"], settings).fit(files[6:], y[6:], tmp_path / "fold", quiet=True,
                                                                   valid=(files[:6], y[:6]))
    assert fold.history["train_clips"] == 18 and fold.history["valid_clips"] == 6
    assert any("broken.wav" in record.getMessage() and "prior" in record.getMessage() for record in caplog.records)


def test_mixup_trains_through_a_last_batch_of_one_clip(tmp_path):
    # 17 training clips in batches of 16: fastai's MixUp alone failed on the lone 17th
    rng = np.random.default_rng(6)
    y = np.arange(23) % 3
    files = write_clips(tmp_path / "train", rng, [[k] for k in y])
    settings = sound.AudioSettings(**{**TINY.__dict__, "epochs": 1})
    assert settings.mixup > 0
    model = sound.AudioModel("multiclass", ["low", "mid", "high"], settings).fit(
        files[:17], y[:17], tmp_path / "run", quiet=True, valid=(files[17:], y[17:]))
    assert model.history["train_clips"] == 17
    assert len((tmp_path / "run" / "history.csv").read_text().strip().splitlines()) == 2   # the epoch ran whole
    assert np.allclose(model.predict(files[17:]).sum(axis=1), 1)


def test_a_time_budget_cuts_the_epochs_and_is_kept_for_a_resume(tmp_path):
    rng = np.random.default_rng(5)
    y = np.arange(16) % 2
    files = write_clips(tmp_path / "train", rng, [[k] for k in y])
    settings = sound.AudioSettings(**{**TINY.__dict__, "epochs": 5, "minutes": 1e-4})  # 6 ms: one epoch at most
    sound.AudioModel("binary", ["no", "yes"], settings).fit(files, y, tmp_path / "run", quiet=True)
    import json
    assert json.loads((tmp_path / "run" / "budget.json").read_text())["epochs"] == 1
    assert len((tmp_path / "run" / "history.csv").read_text().strip().splitlines()) == 2  # a header and one epoch
    settings.minutes = 100.0  # started again in the same folder: the decision stands, the run resumes finished
    sound.AudioModel("binary", ["no", "yes"], settings).fit(files, y, tmp_path / "run", quiet=True)
    assert json.loads((tmp_path / "run" / "budget.json").read_text())["epochs"] == 1
    assert len((tmp_path / "run" / "history.csv").read_text().strip().splitlines()) == 2


def test_a_timm_backbone_loads_three_channel_weights_from_a_local_file_and_exports(tmp_path):
    import timm
    import torch
    torch.manual_seed(0)
    colour = timm.create_model("test_efficientnet", pretrained=False, num_classes=10)  # as saved for images
    torch.save(colour.state_dict(), tmp_path / "weights.pth")
    rng = np.random.default_rng(6)
    y = np.arange(12) % 3
    files = write_clips(tmp_path / "train", rng, [[k] for k in y])
    settings = sound.AudioSettings(**{**TINY.__dict__, "epochs": 1, "backbone": "test_efficientnet"})
    module = sound.backbone(3, 64, settings.network(), tmp_path / "weights.pth").net
    assert torch.equal(module.state_dict()["conv_stem.weight"], colour.state_dict()["conv_stem.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(module.state_dict()["bn1.weight"], colour.state_dict()["bn1.weight"])  # the body as saved
    settings.weights = str(tmp_path / "weights.pth")
    model = sound.AudioModel("multiclass", ["low", "mid", "high"], settings).fit(files, y, tmp_path / "run", quiet=True)
    path = sound.export(model, tmp_path / "model.onnx")
    assert np.abs(sound.predict_exported(path, files[:3]) - model.predict(files[:3])).max() < 2e-3
    with pytest.raises(Exception, match="not a timm architecture"):
        sound.AudioModel("multiclass", ["a", "b"], sound.AudioSettings(backbone="no_such_net"))


def test_a_media_runs_options_are_read_by_name():
    """competitions/tabular/media.py hands the run's options over, as it does to ImageModel."""
    from competitions.tabular.media import MediaOptions
    fast = sound.AudioSettings.of(MediaOptions(seed=3, fast=True))
    assert (fast.seed, fast.epochs, fast.minutes, fast.backbone, fast.weights) == (3, 2, None, "small", None)
    full = sound.AudioSettings.of(MediaOptions(epochs=7, backbone="test_efficientnet", weights="w.pth", lr=0.01))
    assert (full.epochs, full.minutes, full.backbone, full.weights, full.lr) == (7, 10.0, "test_efficientnet", "w.pth", 0.01)
    assert full.width == sound.AudioSettings().width  # the image CNN's width is not the audio CNN's


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_the_baseline_as_arrays_gives_what_scikit_learn_gives(task):
    """The exported inference applies the baseline with numpy: it must be the fitted model."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((60, 5))
    if task == "multilabel":
        y = (X[:, :3] + 0.5 * rng.standard_normal((60, 3)) > 0).astype(int)
        y[:, 2] = 0  # a label never seen: its smoothed frequency
        linear = sound.linear_baseline(X, y, task, 3, seed=0)
        p = sound.linear_probabilities(X, linear, 3)
        for j in range(2):
            assert np.allclose(p[:, j], sound.fit_baseline(X, y[:, j]).predict_proba(X)[:, 1])
        assert np.allclose(p[:, 2], 1 / 62)
        return
    outputs = 2 if task == "binary" else 4
    # multiclass: three of the four classes seen, the fourth gets zero as scikit-learn's would
    y = np.digitize(X[:, 0], [-0.5, 0.5]) if task == "multiclass" else (X[:, 0] > 0).astype(int)
    linear = sound.linear_baseline(X, y, task, outputs, seed=0)
    expected = sound.class_probabilities(sound.fit_baseline(X, y), X, outputs)
    assert np.allclose(sound.linear_probabilities(X, linear, outputs), expected)


@pytest.mark.parametrize("kind, rate, channels", [("wav", 44100, 2), ("flac", 22050, 1), ("ogg", 8000, 1),
                                                  ("mp3", 48000, 2), ("wav-in-mp3", 32000, 1)])
def test_any_container_rate_and_channels_reach_the_same_log_mel(tmp_path, kind, rate, channels):
    """A 1.8 kHz burst read from any container, rate and channel count lands in the same
    mel band at the model's rate, with the model's frame count."""
    rng = np.random.default_rng(3)
    wave = clip(rng, [1], seconds=1.0, rate=rate)
    samples = np.stack([wave, 0.5 * wave], axis=1) if channels == 2 else wave
    container = "wav" if kind == "wav-in-mp3" else kind
    path = tmp_path / f"x.{'mp3' if kind == 'wav-in-mp3' else kind}"
    path.write_bytes(media.encode_audio(samples, rate, container))
    mels = TINY.mels()
    (array,) = spectrograms.compute([path], mels, quiet=True)
    assert array.shape[0] == TINY.n_mels
    assert abs(array.shape[1] - mels.frames_per_second) <= 3  # resampled to the model's rate
    import librosa
    centres = librosa.mel_frequencies(mels.n_mels + 2, fmin=mels.fmin, fmax=mels.fmax)[1:-1]
    assert abs(centres[array.astype(float).mean(axis=1).argmax()] - TONES[1]) < 250
    if rate < 2 * mels.fmax:  # the top bands a recording at this rate cannot hold sit at the floor
        empty = centres > rate / 2 + 500
        assert np.median(array[empty].astype(float)) == pytest.approx(float(array.max()) - mels.top_db, abs=0.1)


def test_onnx_export_agrees_with_torch_with_numpy_soundfile_and_onnxruntime_alone(tmp_path):
    rng = np.random.default_rng(4)
    y = np.arange(18) % 3
    files = write_clips(tmp_path / "train", rng, [[k] for k in y])
    settings = sound.AudioSettings(**{**TINY.__dict__, "epochs": 1})
    model = sound.AudioModel("multiclass", ["low", "mid", "high"], settings).fit(files, y, tmp_path / "run", quiet=True)
    # at the model's rate, the decode is the same and the log-mel within float16 rounding
    same_rate = files[:4] + write_clips(tmp_path / "long", rng, [[0, 2]], kind="flac")
    other = tmp_path / "other.mp3"   # WAV bytes at 44.1 kHz stereo in an .mp3: resampled by FFT, not soxr
    other.write_bytes(media.encode_audio(np.stack([clip(rng, [1], rate=44100)] * 2, axis=1), 44100, "wav"))
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"")
    path = sound.export(model, tmp_path / "model.onnx")

    import subprocess
    import sys
    # a fresh interpreter with the project's modules hidden: only the inference file itself
    script = ("import sys, numpy as np; sys.modules['torch'] = None; sys.modules['librosa'] = None; "
              "sys.modules['soxr'] = None; sys.modules['common'] = None\n"
              "import importlib.util as u; spec = u.spec_from_file_location('inference', sys.argv[1]); "
              "m = u.module_from_spec(spec); spec.loader.exec_module(m)\n"
              "np.save(sys.argv[2], m.predict_exported(sys.argv[3], sys.argv[4:]))")
    from common import sound_inference
    wanted = [*same_rate, other, broken]
    subprocess.run([sys.executable, "-c", script, sound_inference.__file__, tmp_path / "onnx.npy", path, *wanted],
                   check=True, capture_output=True)
    exported = np.load(tmp_path / "onnx.npy")
    torch_side = model.predict(wanted)
    assert exported.shape == torch_side.shape == (len(wanted), 3)
    assert np.abs(exported[:len(same_rate)] - torch_side[:len(same_rate)]).max() < 2e-3
    assert np.abs(exported[-2] - torch_side[-2]).max() < 0.05
    assert np.allclose(exported[-1], model.prior) and np.allclose(torch_side[-1], model.prior)


@pytest.mark.parametrize("rate", [16000, 22050])
def test_the_numpy_log_mel_is_librosas_within_float16_rounding(rate):
    from common import sound_inference
    settings = sound.AudioSettings(sample_rate=rate).mels()
    x = (0.1 * np.random.default_rng(8).standard_normal(int(rate * 1.37))).astype(np.float32)
    x[: rate // 4] = 0.0  # silence: the top_db floor at work
    ours = sound_inference.log_mel(x, spectrograms.mel_filters(settings).astype(np.float32), settings.n_fft,
                                   settings.hop_length, settings.top_db)
    theirs = spectrograms.log_mel(x, settings)
    assert ours.shape == theirs.shape
    assert np.abs(ours.astype(np.float32) - theirs.astype(np.float32)).max() <= 0.0625  # a float16 step at 40 dB


def test_an_audio_backbone_comes_from_the_hugging_face_cache_offline_as_an_image_ones_does(tmp_path, monkeypatch):
    """common/backbones.py builds the audio network too: a hub name read from the cache,
    the colour first convolution summed to the log-mel's one channel; a network rebuilt
    for a trained state dict reads no cache."""
    import timm
    import torch
    from safetensors.torch import save_file

    repository = tmp_path / "hub" / "models--timm--test_resnet.r160_in1k"
    (repository / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(1)
    donor = timm.create_model("test_resnet", num_classes=5)
    save_file({name: tensor.contiguous() for name, tensor in donor.state_dict().items()},
              str(repository / "snapshots" / ("0" * 40) / "model.safetensors"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    settings = sound.NetworkSettings(backbone="timm/test_resnet.r160_in1k")
    built = sound.backbone(3, 64, settings)
    mine, theirs = built.net.state_dict(), donor.state_dict()
    assert built.pretrained and mine["conv1.0.weight"].shape[1] == 1
    assert torch.equal(mine["conv1.0.weight"], theirs["conv1.0.weight"].sum(dim=1, keepdim=True))
    assert all(torch.equal(mine[name], theirs[name]) for name in theirs if not name.startswith(("conv1.0.", "fc.")))
    assert mine["fc.weight"].shape[0] == 3                     # a new head for the clips' classes
    assert not torch.equal(sound.network(3, 64, settings).state_dict()["conv1.0.weight"], mine["conv1.0.weight"])
    sound.AudioModel("multiclass", ["a", "b", "c"], sound.AudioSettings(backbone="timm/test_resnet.r160_in1k"))  # a known name


def test_a_class_bias_undoes_a_lean_one_temperature_cannot():
    # a model that gives one class a fifth of its due: the per-class offset finds it, the CV gains
    from common.metrics import multiclass_log_loss
    from common.sound import fit_calibration
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 2000)
    logits = rng.normal(0, 1, (2000, 4)) + 2.0 * np.eye(4)[y]
    p = np.exp(logits) * np.array([0.2, 1, 1, 1])
    p /= p.sum(axis=1, keepdims=True)
    plain, biased = fit_calibration(p, None, y), fit_calibration(p, None, y, class_bias=True)
    assert plain.bias is None and np.argmax(biased.bias) == 0 and biased.bias[0] - np.mean(biased.bias[1:]) > 1.0
    assert multiclass_log_loss(y, biased.apply(p, None)) < multiclass_log_loss(y, plain.apply(p, None)) - 0.01


def test_geometric_crop_pooling_averages_log_probabilities():
    # two crops of one clip: one sure of class 0, one unsure; the mean of probabilities
    # lets the unsure crop dilute the sure one, the geometric pool keeps their log-odds' mean
    import torch

    class PerCrop(torch.nn.Module):   # logits read from the crop's first cell
        def forward(self, x):
            return torch.stack([x[:, 0, 0, 0], torch.zeros(len(x))], dim=1)

    clip = np.zeros((4, 8), dtype=np.float16)
    clip[0, 0] = np.log(9.0)        # crops start at frames 0, 2, 4: p = (0.9, 0.1), then (0.5, 0.5) twice
    mean = sound.predict_network(PerCrop(), [clip], frames=4)
    geometric = sound.predict_network(PerCrop(), [clip], frames=4, pool="geometric")
    assert mean[0] == pytest.approx([(0.9 + 0.5 + 0.5) / 3, (0.1 + 0.5 + 0.5) / 3], abs=1e-3)
    sure = 9.0 ** (1 / 3)           # (0.9 * 0.5 * 0.5) ** (1/3) : (0.1 * 0.5 * 0.5) ** (1/3), renormalised
    assert geometric[0] == pytest.approx([sure / (1 + sure), 1 / (1 + sure)], abs=1e-3)
    with pytest.raises(ValueError, match="pool"):
        sound.predict_network(PerCrop(), [clip], frames=4, pool="median")
