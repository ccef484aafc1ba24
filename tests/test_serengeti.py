"""serengeti: synthetic data in the real layout, loading, sequence aggregation, and the
whole path through the CLI (run, score, package, runtime test) on --scale small."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from common.runtimes import runner
from common import io, packaging
from competitions import REGISTRY
from common.metrics import MEAN_BINARY_LOG_LOSS
from competitions.serengeti import data as serengeti_data
from competitions.serengeti import model as serengeti_model
from competitions.serengeti.prepare import burst_sample

CLASS_ORDER = ("aardvark,aardwolf,baboon,bat,batearedfox,buffalo,bushbuck,caracal,cattle,cheetah,civet,dikdik,duiker,eland,"
               "elephant,empty,gazellegrants,gazellethomsons,genet,giraffe,guineafowl,hare,hartebeest,hippopotamus,"
               "honeybadger,hyenaspotted,hyenastriped,impala,insectspider,jackal,koribustard,leopard,lionfemale,lionmale,"
               "mongoose,monkeyvervet,ostrich,otherbird,porcupine,reedbuck,reptiles,rhinoceros,rodents,secretarybird,serval,"
               "steenbok,topi,vulture,warthog,waterbuck,wildcat,wildebeest,zebra,zorilla").split(",")


@pytest.fixture(scope="module")
def small(competition_data):
    return competition_data("serengeti")


def test_synth_writes_the_platform_files_in_the_real_layout(small):
    train = pd.read_csv(small / "train_metadata.csv")
    labels = pd.read_csv(small / "train_labels.csv")
    test = pd.read_csv(small / "test_metadata.csv")
    sample = pd.read_csv(small / "submission_format.csv")
    assert list(train.columns) == ["seq_id", "file_name", "datetime"] == list(test.columns)
    assert list(labels.columns) == ["seq_id", *CLASS_ORDER] == list(sample.columns)
    assert len(CLASS_ORDER) == 54
    assert all(re.fullmatch(r"SER_S\d+#[A-Z]\d\d#\d+#\d+", s) for s in train["seq_id"])
    for seq_id, path in zip(train["seq_id"], train["file_name"]):
        season, site, roll, _ = seq_id.removeprefix("SER_").split("#")
        assert re.fullmatch(rf"{season}/{site}/{site}_R{roll}/{season}_{site}_R{roll}_PICT\d{{4}}\.JPG", path)
    frames = train.groupby("seq_id").size()
    assert set(frames) == {1, 2, 3}
    # a season held out for test, as the real Season 11
    assert not set(train["seq_id"].map(serengeti_data.season_of)) & set(test["seq_id"].map(serengeti_data.season_of))
    # from cameras training saw and new ones, as the real later seasons
    train_sites, test_sites = (set(frame["seq_id"].str.split("#").str[1]) for frame in (train, test))
    assert test_sites - train_sites and test_sites & train_sites
    assert set(sample["seq_id"]) == set(test["seq_id"])
    values = labels[CLASS_ORDER]
    assert 0.55 < values["empty"].mean() < 0.85
    assert (values.sum(axis=1) >= 2).any()                 # several animals in one sequence
    assert (values.drop(columns="empty").sum() > 0).sum() >= 10   # a long tail of species
    solution = pd.read_csv(small / "answers" / "solution.csv")
    assert list(solution.columns) == list(sample.columns) and set(solution["seq_id"]) == set(sample["seq_id"])


def test_images_are_jpegs_with_exif_time_and_some_are_dirty(small):
    train = pd.read_csv(small / "train_metadata.csv")
    row = train.iloc[0]
    with Image.open(small / row["file_name"]) as image:
        assert image.format == "JPEG"
        taken = image.getexif().get_ifd(0x8769)[36867]
    assert taken == pd.Timestamp(row["datetime"]).strftime("%Y:%m:%d %H:%M:%S")
    dirt = (small / "answers" / "dirt.txt").read_text().split()
    corrupt = [p for kind, p in zip(dirt[::2], dirt[1::2]) if kind == "corrupt"]
    missing = [p for kind, p in zip(dirt[::2], dirt[1::2]) if kind == "missing"]
    assert corrupt and missing
    assert all(serengeti_data.read_image(small / p, serengeti_model.IMAGE_SIZE) is None for p in corrupt + missing)
    assert not any((small / p).exists() for p in missing)


def test_same_seed_same_bytes(small, tmp_path):
    REGISTRY.competition("serengeti").synth(tmp_path, seed=0, scale="small")
    files = sorted(p.relative_to(small) for p in small.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert io.hash_files([small / f for f in files]) == io.hash_files([tmp_path / f for f in files])


def test_load_types_and_rejects_bad_labels(small, tmp_path):
    data = serengeti_data.load(small)
    assert data.labels.shape[1] == 55 and data.test is not None and data.root == small
    broken = tmp_path / "broken"
    shutil.copytree(small, broken, ignore=shutil.ignore_patterns("S*"))
    labels = pd.read_csv(broken / "train_labels.csv")
    labels.loc[3, "zebra"] = 2
    labels.to_csv(broken / "train_labels.csv", index=False)
    with pytest.raises(io.InputError, match=r"train_labels.csv: row 5 \(seq_id SER_.*\): zebra='2' is not 0 or 1 \(1 row\(s\) in all\)"):
        serengeti_data.load(broken)


def test_a_sequence_is_read_whole_its_frames_and_their_motion():
    from competitions.serengeti import inference

    background = np.full((4, 6, 3), 100, np.uint8)
    walked = [background.copy() for _ in range(3)]
    for shot, column in enumerate((0, 2, 4)):   # an animal walking across a fixed background
        walked[shot][1, column] = 250
    stack = inference.stack_frames(walked)
    channels = inference.sequence_input(stack)
    assert channels.shape == (12, 4, 6) and channels.dtype == np.float32
    mean, std = stack.reshape(-1, 3).mean(axis=0), stack.reshape(-1, 3).std(axis=0)   # the burst's own, per channel
    motion = channels[9:] * std[:, None, None]
    assert np.allclose(motion[:, 1, [0, 2, 4]], 150) and motion.sum() == pytest.approx(150 * 3 * 3)
    assert np.allclose(channels[3:6] * std[:, None, None] + mean[:, None, None], walked[1].transpose(2, 0, 1),
                       atol=1e-3)                                  # every frame's colours, in order
    # a camera with another gain per channel and a season with another light: the same input
    other = np.clip(stack.astype(np.float32) * [0.8, 1.1, 0.95] + [10, -5, 0], 0, 255).round().astype(np.uint8)
    assert np.abs(inference.sequence_input(other) - channels).max() < 0.01
    flat = inference.sequence_input(np.full((3, 4, 6, 3), 90, np.uint8))    # nothing to standardise: zeros, not noise
    assert np.isfinite(flat).all() and not flat.any()
    # a single frame: repeated, no motion; two frames: a b a, the motion is b against a
    assert not inference.sequence_input(inference.stack_frames(walked[:1]))[9:].any()
    pair = inference.sequence_input(inference.stack_frames(walked[:2]))
    assert np.allclose(pair[:3], pair[6:9]) and (pair[9:, 1, [0, 2]] > 0).all() and pair[9:].sum() > 0


def test_the_network_looks_closer_where_the_burst_moved(tmp_path):
    from competitions.serengeti import inference

    rng = np.random.default_rng(0)
    background = np.full((384, 512, 3), 40, np.uint8)
    stripes = np.where((np.arange(24) // 2 % 2 == 0)[:, None, None], 230, 70).astype(np.uint8)   # 2-pixel stripes
    files = []
    for shot, left in enumerate((300, 316, 332)):   # a far animal, 24x24 source pixels, walking right
        frame = background.copy()
        frame[200:224, left:left + 24] = stripes
        frame = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        Image.fromarray(frame).save(tmp_path / f"{shot}.jpg", quality=95)
        files.append(f"{shot}.jpg")
    stack, crops, bad = inference.read_burst(tmp_path, files + ["missing.jpg"], (128, 96))
    assert bad == ["missing.jpg"] and stack.shape == (3, 96, 128, 3) and crops.shape == (3, 64, 64, 3)
    centre_x, centre_y, side = inference.locate(stack)
    assert abs(centre_x - 83) <= 2 and abs(centre_y - 53) <= 2 and side < 40   # around the walk (x 75-89, y 50-56 at 1/4)
    # at 1/4 the stripes blur to grey; in the crop, cut from the source frames, they are resolved
    animal = crops[0][crops[0].mean(axis=-1) > 60]
    assert stack[0, 51:55, 76:81].std() < 10 and len(animal) > 200 and animal.std() > 40
    # nothing moved (a lone frame): the frames' middle square, nothing decoded again
    alone, middle, _ = inference.read_burst(tmp_path, files[:1], (128, 96))
    assert inference.locate(alone) is None and np.array_equal(middle, inference.middle(alone))


def test_a_single_frame_is_read_against_its_cameras_background(tmp_path, monkeypatch):
    from competitions.serengeti import inference

    rng = np.random.default_rng(0)
    scene = np.repeat(np.linspace(30, 180, 512, dtype=np.float32)[None, :, None], 384, axis=0) * [1.0, 0.9, 0.6]
    groups = []
    for number in range(8):   # the site's bursts, most empty, one animal somewhere in a few, each its own light
        frame = scene * rng.uniform(0.9, 1.1)
        if number % 3 == 0:
            frame[100:140, 40 * number:40 * number + 40] = 250
        Image.fromarray(np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)).save(tmp_path / f"{number}.jpg", quality=95)
        groups.append((f"SER_S1#B04#1#{number}", [f"{number}.jpg"]))
    lone = scene * 1.08
    lone[260:300, 400:440] = [200, 60, 40]   # the animal of a single-frame burst, where no other burst had one
    Image.fromarray(np.clip(lone, 0, 255).astype(np.uint8)).save(tmp_path / "lone.jpg", quality=95)
    backgrounds = inference.site_backgrounds(tmp_path, groups, (128, 96))
    assert list(backgrounds) == ["SER_S1#B04"] and list(backgrounds["SER_S1#B04"]) == [False]   # by day only: no grey frame here
    assert np.abs(backgrounds["SER_S1#B04"][False].astype(float) - np.asarray(
        Image.fromarray(scene.astype(np.uint8)).resize((128, 96))).astype(float)).mean() < 6   # the scene, no animal
    stack, crops, _ = inference.read_burst(tmp_path, ["lone.jpg"], (128, 96), backgrounds["SER_S1#B04"])
    centre_x, centre_y, side = inference.locate(stack)
    assert abs(centre_x - 105) <= 3 and abs(centre_y - 70) <= 3 and side < 30    # the animal at 1/4 (x 100-110, y 65-75)
    assert (crops[0].reshape(-1, 3)[:, 0].astype(int) - crops[0].reshape(-1, 3)[:, 2] > 100).mean() > 0.2   # it, close up
    # no background of its kind (a grey night frame here), another site, or none: repeated, nothing located
    Image.fromarray(np.repeat(lone.mean(axis=-1, keepdims=True), 3, axis=-1).astype(np.uint8)).save(tmp_path / "night.jpg")
    for files, given in ((["night.jpg"], backgrounds["SER_S1#B04"]), (["lone.jpg"], backgrounds.get("SER_S2#B04")), (["lone.jpg"], None)):
        alone, middle, _ = inference.read_burst(tmp_path, files, (128, 96), given)
        assert inference.locate(alone) is None and np.array_equal(middle, inference.middle(alone))
    assert inference.site_key("SER_S1#B04#1#7") == "SER_S1#B04" and inference.site_backgrounds(tmp_path, groups[:4], (128, 96)) == {}
    # a camera out by day only reads a bounded number of its bursts' frames, not the first of every burst
    reads = []
    monkeypatch.setattr(inference, "read_image", lambda path, size: reads.append(path) or scene.astype(np.uint8)[::4, ::4])
    many = [(f"SER_S1#B05#1#{number}", ["0.jpg"]) for number in range(10 * inference.BACKGROUND_BURSTS)]
    assert list(inference.site_backgrounds(tmp_path, many, (128, 96))["SER_S1#B05"]) == [False]
    assert len(reads) == inference.BACKGROUND_READS


def test_the_species_are_exclusive_and_a_sigmoid_model_still_loads(tmp_path):
    import torch

    empty = serengeti_data.EMPTY
    prior = np.full(54, 0.01)
    prior[empty], prior[0] = 0.7, 0.05
    torch.manual_seed(0)
    net = serengeti_model.SerengetiNet(width=4).start_at(prior).eval()
    example = (torch.rand(3, serengeti_model.CHANNELS, 48, 64), torch.rand(3, serengeti_model.CHANNELS, 64, 64))
    with torch.no_grad():
        started = torch.sigmoid(net(*example)).numpy()
        net.head[-1].weight.normal_(0, 5)
        spread = torch.sigmoid(net(*example)).numpy()
    share = np.delete(prior, empty) / np.delete(prior, empty).sum()
    assert started[:, empty] == pytest.approx(0.7, abs=0.02) and started[:, 0] == pytest.approx(0.3 * share[0], abs=0.01)
    for probabilities in (started, spread):   # the species share what is not empty: their sum is 1 - P(empty)
        assert np.delete(probabilities, empty, axis=1).sum(axis=1) == pytest.approx(1 - probabilities[:, empty], abs=1e-5)
    assert np.abs(spread - started).max() > 0.1            # the sum holds away from the prior too
    path = serengeti_model.SerengetiModel(net, prior, (64, 48), width=4).save(tmp_path / "model.pt")
    assert serengeti_model.SerengetiModel.load(path).net.exclusive
    payload = torch.load(path, weights_only=True)
    del payload["head"]   # saved before the exclusive species: one sigmoid per label, as trained
    torch.save(payload, path)
    assert not serengeti_model.SerengetiModel.load(path).net.exclusive


def test_training_recolours_a_burst_as_another_camera_and_season_every_frame_alike():
    from competitions.serengeti import inference

    rng = np.random.default_rng(0)
    still = np.repeat(rng.integers(60, 200, (1, 24, 32, 3), dtype=np.uint8), 3, axis=0)   # a burst where nothing moved
    sample = burst_sample(still, still[:, :16, :16])
    assert all(not part.numpy()[9:].any() for _ in range(20) for part in serengeti_model.augment(sample, rng))  # no motion
    recoloured = [serengeti_model.recolour(still, serengeti_model.colour_draw(rng)).astype(float) for _ in range(20)]
    assert all(np.array_equal(r[0], r[1]) and np.array_equal(r[0], r[2]) for r in recoloured)
    balance = [r[0].reshape(-1, 3).mean(axis=0) / 255 for r in recoloured]
    ratios = np.array([b[0] / b[1] for b in balance])
    assert ratios.std() > 0.02 and np.ptp([b.mean() for b in balance]) > 0.1   # colour balance and exposure vary
    assert np.allclose(inference.sequence_input(still), serengeti_model.plain(sample)[0].numpy())  # never at prediction


def test_a_sequence_with_no_readable_frame_gets_the_prior():
    prior = np.full(54, 0.03)
    zebra = serengeti_data.CLASSES.index("zebra")
    seen = np.full(54, 0.5)
    seen[zebra] = 1.0                       # clipped: log loss punishes a confident miss without bound
    frame = serengeti_model.assemble(["a", "b"], {"a": seen}, prior).set_index("seq_id")
    assert frame.loc["a", "zebra"] == pytest.approx(1 - serengeti_model.CLIP) and frame.loc["a", "empty"] == pytest.approx(0.5)
    assert frame.loc["b"].to_numpy(dtype=float) == pytest.approx(prior)


def test_predict_without_hidden_test_files_explains_the_code_submission(small, tmp_path):
    train_only = tmp_path / "train_only"
    shutil.copytree(small, train_only, ignore=shutil.ignore_patterns("test_metadata.csv", "submission_format.csv", "answers"))
    competition = REGISTRY.competition("serengeti")
    data = competition.load(train_only)
    assert data.test is None
    with pytest.raises(io.InputError, match="hidden runtime.*compete package serengeti"):
        competition.predict(None, data)
    with pytest.raises(io.InputError, match="compete runtime test"):
        competition.sample(train_only)


@pytest.mark.slow
def test_fast_run_beats_the_prior_and_its_bundle_predicts_the_same(compete, fast_run, tmp_path):
    run = fast_run("serengeti")   # run, validate and same bytes are the contract suite's (tests/test_contract.py)
    project, run_dir = packaging.PROJECT_ROOT, run.run_dir
    cv = float(re.search(r"cv mean_binary_log_loss: ([0-9.]+)", run.stdout).group(1))
    recorded = json.loads((run_dir / "metrics.json").read_text())
    assert len(recorded["unreadable_images"]) == 4   # the 3 corrupt and 1 missing training images: reported
    assert recorded["unusable_rows"] == {"train_metadata.csv": {"image_unreadable": 4}}  # and counted by kind
    from PIL import Image
    for plot in ("label_scores.png", "training_curves.png"):  # each plot claims the score the run printed
        with Image.open(run_dir / plot) as image:
            assert f"cv mean_binary_log_loss {cv:.5f}" in image.text["Title"]
    assert cv < 0.2                                  # started at the prior: never the 0.69 of an untrained sigmoid
    # the final model is the validated network trained on with every site: the held-out sites' sequences joined
    assert recorded["epochs"] == 1 and recorded["refit_epochs"] == 1     # --fast: the 2-epoch cap shared
    assert recorded["refit_sequences"] > recorded["train_sequences"] + recorded["valid_sequences"]  # their earlier seasons too
    import torch
    saved = torch.load(run_dir / "model.pt", weights_only=True)["state_dict"]
    final, validated = (torch.load(run_dir / folder / "checkpoints" / "best.pth", weights_only=True) for folder in ("refit", "."))
    assert all(torch.equal(saved[name], final[name]) for name in saved) and not torch.equal(saved["head.2.weight"],
                                                                                            validated["head.2.weight"])

    # what a blend reads: the held-out sequences only, all in fold 1, whose own score is the run's
    oof = pd.read_csv(run_dir / "out_of_fold.csv")
    assert set(oof["fold"]) == {1} and len(oof) == recorded["valid_sequences"] and oof["seq_id"].is_unique
    assert MEAN_BINARY_LOG_LOSS(oof[[f"truth:{c}" for c in CLASS_ORDER]].to_numpy(), oof[CLASS_ORDER].to_numpy()) == \
        pytest.approx(recorded["cv_score"], abs=1e-5)
    assert "hold-out, not K folds" in recorded["out_of_fold_note"]
    # blended with a copy of itself it blends on those rows (cut into parts) and scores as it does
    shutil.copytree(run_dir, tmp_path / "copy")
    blended = compete("blend", "serengeti", run_dir, tmp_path / "copy", "--data", run.data, "--out", tmp_path / "blend.csv",
                      cwd=tmp_path).stdout.splitlines()
    assert float(blended[-3].split(": ")[1]) == pytest.approx(recorded["cv_score"], abs=1e-5)
    blend_run = tmp_path / blended[-2].split(": ", 1)[1]
    assert "one held-out split" in json.loads((blend_run / "metrics.json").read_text())["cv_score_note"]

    score = compete("score", "serengeti", run.submission, "--answers", run.data / "answers", cwd=project)
    value = float(score.stdout.split(":")[1])
    truth = pd.read_csv(run.data / "answers" / "solution.csv")
    prior = pd.read_csv(run.data / "train_labels.csv")[CLASS_ORDER].mean().to_numpy()
    baseline = MEAN_BINARY_LOG_LOSS(truth[CLASS_ORDER].to_numpy(), np.tile(prior, (len(truth), 1)))
    assert value < 1.2 * baseline

    bundle = tmp_path / "submission.zip"
    compete("package", "serengeti", "--run-dir", run_dir, "--out", bundle, cwd=project)
    if not runner.sandbox_available()[0]:
        pytest.skip("unshare unavailable: the runtime test needs --unisolated here")
    tested = compete("runtime", "test", bundle, "--data", run.data, "--out", tmp_path / "runtime.csv", "--time-limit", "300",
                     cwd=project, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # the bundle (ONNX on the hakuna-madata runtime) predicts what `compete run` did
    ours, theirs = (pd.read_csv(path).set_index("seq_id") for path in (tmp_path / "runtime.csv", run.submission))
    assert list(ours.index) == list(theirs.index) and list(ours.columns) == list(theirs.columns)
    assert np.abs(ours.to_numpy() - theirs.to_numpy()).max() <= 1e-5


def test_the_time_budget_sets_the_epochs_and_a_resumed_run_keeps_them(tmp_path):
    import torch

    from common.trainers import fit_budget

    def slow_loss(logits, target):
        import time
        time.sleep(0.05)                   # every training step takes at least 50 ms
        return serengeti_model.loss(logits, target)

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)               # a tiny net: 2 threads only spin against other processes on a shared machine
    net = serengeti_model.SerengetiNet(width=4)
    batches = [([torch.rand(2, serengeti_model.CHANNELS, 48, 64), torch.rand(2, serengeti_model.CHANNELS, 32, 32)],
                torch.zeros(2, 54, dtype=torch.uint8)) for _ in range(10)]
    tight = fit_budget(net, lambda: batches, slow_loss, tmp_path / "tight", seconds=0.2, most=40, valid_batches=3)
    assert tight["epochs"] == 1 and tight["seconds_per_batch"] >= 0.05     # at least one epoch, even over budget
    roomy = fit_budget(net, lambda: batches, slow_loss, tmp_path / "roomy", seconds=3600, most=7, valid_batches=3)
    assert roomy["epochs"] == 7                                           # capped by `most`
    (tmp_path / "tight").mkdir(exist_ok=True)
    again = fit_budget(net, lambda: batches, slow_loss, tmp_path / "tight", seconds=3600, most=40, valid_batches=3)
    assert again == tight                                                 # the decision of the run being resumed
    torch.set_num_threads(threads)


def test_a_saved_model_keeps_its_stem_and_predicts_the_same(tmp_path):
    import torch

    prior = np.full(54, 0.02)
    torch.manual_seed(0)
    net = serengeti_model.SerengetiNet(width=4, stem=3).start_at(prior).eval()
    path = serengeti_model.SerengetiModel(net, prior, (96, 72), width=4).save(tmp_path / "model.pt")
    loaded = serengeti_model.SerengetiModel.load(path)
    assert loaded.net.stem == 3 and loaded.image_size == (96, 72)
    example = (torch.rand(2, serengeti_model.CHANNELS, 72, 96), torch.rand(2, serengeti_model.CHANNELS, 64, 64))
    with torch.no_grad():
        assert torch.allclose(loaded.net.eval()(*example), net(*example))
    # a model saved before its inputs changed may have the same shapes: refused, not run on other inputs
    payload = torch.load(path, weights_only=True)
    payload["input"] = "burst-standardised"
    torch.save(payload, path)
    with pytest.raises(io.InputError, match=r"model\.pt: a model trained before the network read each burst's crops.*train it again"):
        serengeti_model.SerengetiModel.load(path)


def test_validation_holds_out_whole_sites_of_the_last_season_and_never_trains_on_them():
    from competitions.serengeti.prepare import validation_split

    sites = [f"{letter}{number:02d}" for letter in "BCD" for number in range(1, 5)]   # 12 camera sites
    seq_ids = [f"SER_S{season}#{site}#1#{number}" for season in (1, 2, 3) for site in sites for number in range(20)]
    frames = pd.DataFrame({"seq_id": seq_ids, "season": [s.split("#")[0].removeprefix("SER_") for s in seq_ids]})
    site = frames["seq_id"].str.split("#").str[1]
    train, valid = validation_split(frames, seed=0, share=0.25)
    assert set(frames.loc[valid, "season"]) == {"S3"} and site[valid].nunique() == 3 and valid.sum() == 60
    assert not set(site[train]) & set(site[valid])                        # a validation site never trains, in any season
    assert train.sum() == 9 * 3 * 20 and not (train & valid).any()
    again_train, again_valid = validation_split(frames, seed=0, share=0.25)
    assert (again_valid == valid).all() and (again_train == train).all()   # the same sites every run
    assert set(site[validation_split(frames, seed=1, share=0.25)[1]]) != set(site[valid])   # the seed picks them
    assert site[validation_split(frames, seed=0, share=1.0)[0]].nunique() == 1          # one site trains at least


def test_the_budget_is_spent_its_epochs_rounded_up():
    from common.trainers import budget_epochs

    # 90 training batches of 1 s and 30 batches' worth of validation (a third of a step each): 100 s an epoch
    assert budget_epochs(1000, 1.0, 90, 30, most=40) == 10
    assert budget_epochs(1050, 1.0, 90, 30, most=40) == 11    # half an epoch more trains too, not left unused
    assert budget_epochs(30, 1.0, 90, 30, most=40) == 1       # at least one epoch, even over budget
    assert budget_epochs(10 ** 6, 1.0, 90, 30, most=40) == 40


def test_both_predictors_average_a_sequence_and_its_mirror(tmp_path):
    import torch

    from competitions.serengeti import inference

    prior = np.full(54, 0.02)
    torch.manual_seed(0)
    net = serengeti_model.SerengetiNet(width=4).eval()      # no prior bias: the outputs spread
    model = serengeti_model.SerengetiModel(net, prior, (64, 48), width=4)
    example = [torch.rand(2, serengeti_model.CHANNELS, 48, 64), torch.rand(2, serengeti_model.CHANNELS, 64, 64)]
    ours = serengeti_model.sequence_probabilities(model, [(example,)])
    mirrored = serengeti_model.sequence_probabilities(model, [([torch.flip(part, dims=[3]) for part in example],)])
    assert np.abs(ours - mirrored).max() <= 1e-6             # one answer for a sequence and its mirror image
    with torch.no_grad():
        one_view = torch.sigmoid(net(*example)).numpy()
    assert np.abs(ours - one_view).max() > 1e-5              # a random net is not symmetric: this is an average
    model.export(tmp_path)
    bundle = inference.Model(tmp_path)                        # the code submission's ONNX path averages the same views
    assert np.abs(bundle.probabilities(*(part.numpy() for part in example)) - ours).max() <= 1e-5


def test_training_shifts_every_frame_alike_within_a_sixteenth_of_the_width():
    stack = np.zeros((3, 48, 64, 3), dtype=np.uint8)
    stack[:, 24, 32] = 200                         # one bright pixel, still in every frame: no motion
    seen = set()
    for seed in range(40):
        sample = serengeti_model.augment(burst_sample(stack, stack[:, :16, :16]), np.random.default_rng(seed))[0].numpy()
        assert sample.shape == (serengeti_model.CHANNELS, 48, 64)
        places = {tuple(np.argwhere(sample[channel] > 0)[0]) for channel in range(0, 9, 3)}
        assert len(places) == 1                    # the three frames moved together
        row, column = places.pop()
        assert abs(row - 24) <= 4 and min(abs(column - 32), abs(column - 31)) <= 4   # 64 / 16 = 4 pixels at most
        seen.add((row, column))
    assert len(seen) > 10                          # and it does move
