"""Image competitions through `PLATFORM:SLUG`: each Kaggle layout recognised from its
files, trained end to end through the CLI on the project's synthetic sets (tiny images, a
narrow network, the --fast epoch cap), the exported network agreeing with the trained one,
pretrained weights loaded from a local file, and bad input as one line."""
from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common import io
from competitions.tabular import media as MD
from competitions.tabular import media_synth

CACTUS, DOGS, PLANET, SEEDLINGS = media_synth.LAYOUTS
SMALL_RUN = ("--fast", "--quiet", "--set", "width=8", "--set", "batch_size=32")


def made(tmp_path: Path, slug: str, rows: int = 48, seed: int = 0) -> Path:
    return media_synth.make(tmp_path / slug, slug, rows=rows, seed=seed)


@pytest.fixture(scope="module")
def cactus_run(compete, tmp_path_factory):
    """A fast run on 300 synthetic cactus images, one test image corrupted."""
    work = tmp_path_factory.mktemp("cactus")
    data = media_synth.make(work / "data", CACTUS, rows=300, seed=1)
    broken = sorted((data / "test").iterdir())[0]
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    result = compete("run", f"kaggle:{CACTUS}", "--data", data, "--out", work / "submission.csv", *SMALL_RUN,
                     "--set", "epochs=2", cwd=work)
    run_dir = work / result.stdout.split("run: ")[1].split()[0]
    return data, run_dir, work / "submission.csv", result, broken


# ---------------------------------------------------------------- recognition

@pytest.mark.parametrize("slug, task, tags, extension, test_folder, shape", [
    (CACTUS, "binary", False, True, "test", "labels-csv"),
    (DOGS, "multiclass", False, False, "test", "labels-csv"),
    (PLANET, "multilabel", True, False, "test-jpg", "labels-csv"),
    (SEEDLINGS, "multiclass", False, True, "test", "class-folders"),
])
def test_each_layout_is_recognised_from_its_files(tmp_path, slug, task, tags, extension, test_folder, shape):
    data_dir = made(tmp_path, slug)
    layout = MD.recognise(data_dir)
    assert (layout.kind, layout.shape, layout.test.with_extension) == ("image", shape, extension)
    assert layout.test.folder.name == test_folder and None not in layout.test.files
    sample = pd.read_csv(layout.sample.path, dtype=str)
    named = [path.name if extension else path.stem for path in layout.test.files]
    assert named == sample.iloc[:, 0].tolist()          # the test files in the sample's order
    data = MD.load(data_dir, layout, None)
    assert (data.target.task, data.tags) == (task, tags)
    assert len(data.y) == len(layout.train_files) > 0
    if slug == DOGS:
        assert data.target.class_columns == list(media_synth.BREEDS)        # one probability column per breed
    if slug == PLANET:
        assert set(data.target.columns) <= set(media_synth.WEATHER + media_synth.LAND) and data.y.shape[1] >= 5
        row = pd.read_csv(data_dir / "train_v2.csv").set_index("image_name").loc[layout.train_files[0].stem, "tags"]
        assert {t for t, on in zip(data.target.columns, data.y[0]) if on} == set(row.split())
    if slug == SEEDLINGS:
        labelled = {path.name: media_synth.SPECIES[label] for path, label in zip(layout.train_files, data.y)}
        assert all(path.parent.name == labelled[path.name] for path in layout.train_files)


def test_audio_clips_are_recognised_as_audio_for_the_sound_model(tmp_path):
    from common.media import write_audio

    data_dir = tmp_path / "calls"
    rng = np.random.default_rng(0)
    for part, count in (("Train", 6), ("Test", 3)):
        for i in range(count):
            write_audio(data_dir / part / f"{part.lower()}{i}.wav", rng.normal(0, 0.1, 8000), 16000, kind="wav")
    pd.DataFrame({"ID": [f"train{i}" for i in range(6)], "label": ["owl", "frog"] * 3}).to_csv(data_dir / "Train.csv", index=False)
    pd.DataFrame({"ID": [f"test{i}" for i in range(3)], "owl": 0.5, "frog": 0.5}).to_csv(data_dir / "SampleSubmission.csv",
                                                                                          index=False)
    layout = MD.recognise(data_dir)
    assert (layout.kind, layout.shape, layout.test.folder.name, layout.test.with_extension) == ("audio", "labels-csv", "Test", False)
    assert layout.describe().startswith("audio clips: 6 training files")
    data = MD.load(data_dir, layout, None)
    assert data.target.task == "binary" and data.target.class_columns == ["frog", "owl"]


def test_tags_are_scored_per_tag(tmp_path):
    from competitions.tabular import Tabular

    answers = pd.DataFrame({"image_name": ["a", "b", "c"], "tags": ["clear primary", "haze water", "clear primary road"]})
    answers.to_csv(tmp_path / "solution.csv", index=False)
    submission = pd.DataFrame({"image_name": ["a", "b", "c"], "tags": ["clear primary", "haze", "clear road water"]})
    scored = Tabular("kaggle", PLANET, metric="f1").score(submission, tmp_path)
    # 7 true tags, 6 predicted, 5 in common: F1 over every (image, tag) pair
    assert scored == {"f1": pytest.approx(2 * 5 / 13)}


def test_multi_word_class_names_are_classes_not_tags():
    assert MD.is_tags(pd.Series(["haze primary", "clear", "clear primary water", "haze"]))
    assert not MD.is_tags(pd.Series(["Common Chickweed", "Black-grass", "Maize", "Common wheat", "Fat Hen", "Sugar beet",
                                     "Loose Silky-bent", "Scentless Mayweed", "Common Chickweed"]))


def test_zipped_folders_are_unpacked_bounded_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / "cache"))
    data_dir = made(tmp_path, CACTUS)
    for folder in ("train", "test"):
        with zipfile.ZipFile(data_dir / f"{folder}.zip", "w") as archive:
            for path in sorted((data_dir / folder).iterdir()):
                archive.write(path, f"{folder}/{path.name}")
        shutil.rmtree(data_dir / folder)
    layout = MD.recognise(data_dir)
    assert layout.test.folder.name == "test" and str(tmp_path / "cache") in str(layout.test.folder)
    assert len(layout.train_files) == len(pd.read_csv(data_dir / "train.csv"))


def test_a_labels_csv_naming_a_missing_file_is_one_line_naming_it(compete, tmp_path):
    data_dir = made(tmp_path, DOGS)
    gone = pd.read_csv(data_dir / "labels.csv")["id"].iloc[3]
    (data_dir / "train" / f"{gone}.jpg").unlink()
    result = compete.in_process("fit", f"kaggle:{DOGS}", "--data", data_dir, "--fast")
    assert result.exit_code == 2
    assert "labels.csv: 1 of its" in result.output and repr(gone) in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_a_test_folder_that_does_not_match_the_sample_is_refused_naming_the_ids(compete, tmp_path):
    data_dir = made(tmp_path, SEEDLINGS)
    gone = sorted((data_dir / "test").iterdir())[2]
    gone.unlink()
    result = compete.in_process("fit", f"kaggle:{SEEDLINGS}", "--data", data_dir, "--fast")
    assert result.exit_code == 2
    assert "sample_submission.csv: 1 of its" in result.output and repr(gone.name) in result.output
    assert "the test folder does not match the sample" in result.output


def test_a_folder_of_images_without_labels_says_what_it_found(compete, tmp_path):
    data_dir = made(tmp_path, CACTUS)
    (data_dir / "train.csv").unlink()
    result = compete.in_process("fit", f"kaggle:{CACTUS}", "--data", data_dir, "--fast")
    assert result.exit_code == 2 and "no labels for them" in result.output and "test/" in result.output


# ---------------------------------------------------------------- end to end

def test_cactus_end_to_end_beats_the_class_prior(cactus_run, compete):
    data, run_dir, submission, result, broken = cactus_run
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metric"] == "auc" and metrics["layout_shape"] == "labels-csv"
    assert "held-out split" in metrics["cv_score_note"]
    assert metrics["cv_score"] > metrics["prior_baseline"] + 0.1    # the prior's AUC is 0.5
    assert f"cv auc: {metrics['cv_score']:.5f}" in result.stdout
    scored = compete("score", f"kaggle:{CACTUS}", submission, "--answers", data / "answers", "--metric", "auc")
    assert float(scored.stdout.split("auc:")[1]) > 0.6
    for plot in ("training_curves.png", "confusion_matrix.png"):
        assert (run_dir / plot).stat().st_size > 1000
    held = pd.read_csv(run_dir / "out_of_fold.csv")
    assert len(held) == metrics["held_out"] and {"id", "has_cactus", "truth:has_cactus"} <= set(held.columns)
    assert sorted(held["fold"].unique()) == [1, 2]    # the halves each decision (and a blend's weights) is fitted across


def test_an_unreadable_test_image_gets_the_prior_and_is_named(cactus_run):
    data, run_dir, submission, result, broken = cactus_run
    frame = pd.read_csv(submission)
    sample = pd.read_csv(data / "sample_submission.csv")
    assert frame["id"].tolist() == sample["id"].tolist()                 # complete, in the sample's order
    prior = json.loads((run_dir / "network.json").read_text())["prior"][0]
    assert frame.set_index("id").loc[broken.name, "has_cactus"] == pytest.approx(prior, abs=1e-6)
    logged = [line for line in (run_dir / "log.txt").read_text().splitlines() if broken.name in line]
    assert len(logged) == 1 and "cannot be read and get the training prior" in logged[0]


@pytest.mark.slow   # ~50 s at load 15; the decision and the columns it writes: test_decided_values_become_the_samples_columns
@pytest.mark.extended   # training end to end: the cactus run
def test_tags_are_multi_label_end_to_end(compete, tmp_path):
    data = made(tmp_path, PLANET, rows=160)
    out = tmp_path / "submission.csv"
    compete("run", f"kaggle:{PLANET}", "--data", data, "--out", out, *SMALL_RUN, "--set", "epochs=1",
            "--set", "image_size=32", cwd=tmp_path)
    frame = pd.read_csv(out, dtype=str, keep_default_na=False)
    vocabulary = set(media_synth.WEATHER + media_synth.LAND)
    assert frame["tags"].str.len().gt(0).all()                      # every image gets at least one tag
    assert set(" ".join(frame["tags"]).split()) <= vocabulary and frame["tags"].str.contains(" ").any()
    run_dir = next((tmp_path / "runs" / f"kaggle:{PLANET}").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metric"] == "f1" and metrics["tags"] and metrics["decision"]["kind"] == "per_class"
    assert (run_dir / "per_label_auc.png").is_file()
    scored = compete("score", f"kaggle:{PLANET}", out, "--answers", data / "answers", "--metric", "f1")
    assert float(scored.stdout.split("f1:")[1]) > 0.5     # F1 over (image, tag) pairs


@pytest.mark.slow   # ~40 s at load 15; the folders: test_each_layout_is_recognised_from_its_files, labels: below
@pytest.mark.extended   # training end to end: the cactus run
def test_class_folders_end_to_end(compete, tmp_path):
    data = made(tmp_path, SEEDLINGS, rows=120)
    out = tmp_path / "submission.csv"
    compete("run", f"kaggle:{SEEDLINGS}", "--data", data, "--out", out, "--metric", "accuracy", *SMALL_RUN,
            "--set", "epochs=1", "--set", "image_size=32", cwd=tmp_path)
    frame = pd.read_csv(out)
    assert frame.columns.tolist() == ["file", "species"] and set(frame["species"]) <= set(media_synth.SPECIES)
    assert frame["file"].tolist() == pd.read_csv(data / "sample_submission.csv")["file"].tolist()
    assert compete("validate", f"kaggle:{SEEDLINGS}", out, "--data", data).returncode == 0


def test_decided_values_become_the_samples_columns():
    from competitions.tabular import media_inference as MI

    tags = {"tags": True, "task": "multilabel", "classes": ["clear", "haze", "water"], "columns": ["clear", "haze", "water"],
            "sample_columns": ["tags"], "class_columns": [], "output": "label"}
    probabilities = np.array([[0.9, 0.1, 0.7], [0.2, 0.3, 0.1]])
    decided = MI.decide({"kind": "per_class", "per_class": [0.5, 0.5, 0.5]}, probabilities, tags=True)
    assert MI.columns(tags, decided) == {"tags": ["clear water", "haze"]}   # none above its threshold: the likeliest
    labels = {"tags": False, "task": "multiclass", "classes": ["Charlock", "Maize", "Common Chickweed"], "columns": ["species"],
              "sample_columns": ["species"], "class_columns": [], "output": "label"}
    assert MI.columns(labels, MI.decide({"kind": "argmax"}, probabilities)) == {"species": ["Charlock", "Maize"]}
    wide = {**labels, "output": "probability", "class_columns": ["c", "m", "cc"]}
    calibrated = MI.decide({"kind": "temperature", "temperature": 2.0}, probabilities / probabilities.sum(1, keepdims=True))
    assert np.allclose(calibrated.sum(axis=1), 1) and calibrated[0, 0] < 0.9 / 1.7   # softer, still a distribution
    assert list(MI.columns(wide, calibrated)) == ["c", "m", "cc"]


# ---------------------------------------------------------------- the exported network

def tiny_model(task: str, classes: list, size: int = 24):
    from common import backbones
    from common.vision import ImageModel

    model = ImageModel(task, classes)
    model.size, model.width = size, 8
    model.net = backbones.make_backbone("small", model.outputs, width=8, image_size=size).net.eval()
    model.prior = np.full(model.outputs, 0.4)
    return model


@pytest.mark.parametrize("task, classes", [("binary", [0, 1]), ("multiclass", ["a", "b", "c"])])
def test_the_exported_networks_predict_what_the_trained_one_does(tmp_path, task, classes):
    from competitions.tabular import media_inference as MI

    data_dir = made(tmp_path, DOGS, rows=12)
    files = sorted((data_dir / "test").iterdir())
    model = tiny_model(task, classes)
    expected = model.predict(files)
    model.export(tmp_path / "run", MI.MODEL, MI.SCRIPT, MI.NETWORK, None)
    onnx, bad = MI.Network(tmp_path / "run").predict(files)
    assert bad == [] and np.allclose(onnx, expected, atol=1e-5)
    (tmp_path / "run" / MI.MODEL).unlink()      # as Kaggle's image runs it: no onnxruntime model, torch's copy
    script, _ = MI.Network(tmp_path / "run").predict(files)
    assert np.allclose(script, expected, atol=1e-5)


@pytest.mark.slow
def test_the_package_passes_the_rerun_emulation_writing_what_compete_predict_writes(cactus_run, compete, tmp_path):
    from common.runtimes import runner
    if not runner.sandbox_available()[0]:
        pytest.skip("no sandbox here: the rerun emulation cannot run")
    data, run_dir, submission, _, _ = cactus_run
    compete("package", f"kaggle:{CACTUS}", "--run-dir", run_dir, "--out", tmp_path / "package")
    shipped = {path.name for path in (tmp_path / "package" / "dataset").rglob("*") if path.is_file()}
    assert "model.torchscript.pt" in shipped and "model.onnx" not in shipped   # Kaggle's image has torch, no onnxruntime
    assert not {"vision.py", "trainers.py", "media.py"} & shipped
    result = compete("runtime", "test", tmp_path / "package", "--data", data, "--out", tmp_path / "rerun.csv")
    assert "passed on kaggle-notebook" in result.stdout
    assert (tmp_path / "rerun.csv").read_bytes() == submission.read_bytes()


# ---------------------------------------------------------------- backbones

@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_a_timm_backbone_loads_weights_from_a_local_file_and_fine_tunes_its_body_slower(tmp_path, suffix):
    import timm
    import torch

    from common import backbones
    from common.vision import ImageModel

    donor = timm.create_model("test_efficientnet", num_classes=7)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(donor.state_dict(), path)
    else:
        from safetensors.torch import save_file
        save_file({name: tensor.contiguous() for name, tensor in donor.state_dict().items()}, str(path))
    built = backbones.make_backbone("test_efficientnet", 3, weights=path)
    assert built.pretrained and built.head == ("classifier.",)
    mine, theirs = built.net.state_dict(), donor.state_dict()
    body = [name for name in theirs if not name.startswith("classifier.")]
    assert body and all(torch.equal(mine[name], theirs[name]) for name in body)
    assert mine["classifier.weight"].shape == (3, theirs["classifier.weight"].shape[1])   # a new head for 3 classes

    class Settings:
        seed, fast, epochs, backbone, weights, image_size, batch_size = 0, True, 1, "test_efficientnet", path, 32, 8

    data_dir = made(tmp_path, DOGS, rows=24)
    files = sorted((data_dir / "train").iterdir())[:24]
    y = np.arange(len(files)) % 3
    model = ImageModel("multiclass", ["a", "b", "c"], Settings()).fit(files[:16], y[:16], tmp_path / "run", True,
                                                                      valid=(files[16:], y[16:]))
    assert len(model.rates) == 2 and model.rates[0] < model.rates[1]    # [body, head]
    assert model.predict(files[:4]).shape == (4, 3)


def test_a_hub_name_is_read_from_the_hugging_face_cache_offline(tmp_path, monkeypatch):
    import timm
    import torch
    from safetensors.torch import save_file

    from common import backbones

    cache = tmp_path / "hub"
    snapshot = cache / "models--timm--test_resnet.r160_in1k" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (cache / "models--timm--test_resnet.r160_in1k" / "refs").mkdir()
    (cache / "models--timm--test_resnet.r160_in1k" / "refs" / "main").write_text("0" * 40)
    donor = timm.create_model("test_resnet", num_classes=5)
    save_file({name: tensor.contiguous() for name, tensor in donor.state_dict().items()}, str(snapshot / "model.safetensors"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    built = backbones.make_backbone("timm/test_resnet.r160_in1k", 2)
    first = next(iter(donor.state_dict()))
    assert built.pretrained and torch.equal(built.net.state_dict()[first], donor.state_dict()[first])
    with pytest.raises(io.InputError, match="not in the Hugging Face cache"):
        backbones.make_backbone("timm/test_convnext.r160_in1k", 2)
    with pytest.raises(io.InputError, match="not a timm architecture"):
        backbones.make_backbone("no_such_net", 2)


def test_set_weights_on_an_image_folder_names_the_backbone_weights_file(compete, tmp_path):
    """--set weights=PATH on an image folder is the backbone's weights file, not the
    tables' row weights sharing the option's name (which once refused it for media)."""
    data = made(tmp_path, CACTUS, rows=24)
    result = compete("fit", f"kaggle:{CACTUS}", "--data", data, "--fast", "--quiet", "--set", "image_size=32",
                     "--set", f"weights={tmp_path / 'absent.pth'}", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "absent.pth: pretrained weights not found" in result.stderr


@pytest.mark.slow   # a whole fit through the CLI: ~25 s at load 2, 107 s at load 13
@pytest.mark.extended   # the option's plumbing: the test above; the loading: the timm backbone tests
def test_set_weights_through_the_cli_fine_tunes_a_timm_backbone_from_a_local_file(compete, tmp_path):
    """--set weights=PATH on an image folder is the backbone's weights (the tables' row
    weights option shares the name and once refused it for media)."""
    import timm
    import torch

    torch.manual_seed(0)
    torch.save(timm.create_model("test_efficientnet", num_classes=7).state_dict(), tmp_path / "donor.pth")
    data = made(tmp_path, CACTUS, rows=48)
    compete("fit", f"kaggle:{CACTUS}", "--data", data, "--run-dir", tmp_path / "run", "--fast", "--quiet",
            "--set", "backbone=test_efficientnet", "--set", f"weights={tmp_path / 'donor.pth'}", "--set", "image_size=32",
            "--set", "epochs=1", "--set", "batch_size=16", cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["backbone"] == "test_efficientnet" and metrics["pretrained"] is True
    assert "backbone donor.pth:" in (tmp_path / "run" / "log.txt").read_text()
