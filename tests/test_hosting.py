"""Hosting: `host audit` flags a competition built naively from labelled files (names,
order, tags, formats, timestamps), and passes the same files after `host mask`."""
from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest
from mutagen.id3 import ID3, TIT2

from common import media
from common.masking import FIXED_TIME, labelled_files, random_ids

CLASSES = ["Cape Batis", "Cape Bunting", "Cape Robin-Chat", "Karoo Prinia", "Sabota Lark", "Sombre Greenbul"]
PER_CLASS = 12


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """Labelled recordings the way a scraper leaves them: named after the species,
    the species in the ID3 title, one recordist's sample rate per species, downloaded
    species after species. The content itself carries the class (a pitch per class);
    the durations do not."""
    root = tmp_path_factory.mktemp("scraped")
    rng = np.random.default_rng(0)
    stamp = 1_600_000_000
    for index, species in enumerate(CLASSES):
        folder = root / species
        folder.mkdir()
        rate = (16000, 22050, 32000, 44100, 48000, 24000)[index]
        for number in range(PER_CLASS):
            seconds = rng.uniform(0.6, 1.6)
            t = np.arange(int(seconds * rate)) / rate
            wave = 0.4 * np.sin(2 * np.pi * (800 + 400 * index) * t) + 0.05 * rng.standard_normal(len(t))
            path = folder / f"{species.lower().replace(' ', '-')}-{number:03d}.mp3"
            media.write_audio(path, wave.astype(np.float32), rate, "mp3")
            tags = ID3()
            tags.add(TIT2(encoding=3, text=f"{species} song"))
            tags.save(path)
            stamp += 60
            os.utime(path, (stamp, stamp))
    (root / CLASSES[0] / "broken-download.mp3").write_bytes(b"<html><body>404</body></html>")
    return root


def naive_competition(source, out):
    """What a host gets by copying files as they are: original names as ids, rows
    sorted by species, the last third of each species as test."""
    rows = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        files = sorted(f for f in folder.iterdir() if f.name != "broken-download.mp3")
        for position, path in enumerate(files):
            side = "Train" if position < len(files) * 2 // 3 else "Test"
            (out / side).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / side / path.name)
            rows.append((path.stem, folder.name, side))
    frame = pd.DataFrame(rows, columns=["ID", "label", "side"])
    frame.loc[frame.side == "Train", ["ID", "label"]].to_csv(out / "Train.csv", index=False)
    test = frame[frame.side == "Test"]
    test[["ID"]].assign(**{c: 1 / len(CLASSES) for c in CLASSES}).to_csv(out / "SampleSubmission.csv", index=False)
    (out / "answers").mkdir()
    test[["ID", "label"]].to_csv(out / "answers" / "test_labels.csv", index=False)
    return out


def verdicts(stdout: str) -> dict:
    found = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in ("label", "side"):
            verdict = next((p for p in parts if p in ("LEAK", "ok", "skipped")), None)
            found[(parts[0], parts[1])] = verdict
    return found


def test_audit_flags_a_naively_built_competition(compete, source, tmp_path):
    naive = naive_competition(source, tmp_path / "naive")
    result = compete("host", "audit", naive, "--quiet", check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    found = verdicts(result.stdout)
    for signal in ("id", "order", "tags", "format", "timestamp"):
        assert found[(signal, "label")] == "LEAK", (signal, result.stdout)
    assert found[("id", "side")] == "LEAK"  # numbering puts the last third in test
    assert "leak(s):" in result.stdout


def test_mask_then_audit_passes(compete, source, tmp_path):
    out = tmp_path / "masked"
    result = compete("host", "mask", source, "--out", out, "--top", 5, "--test-size", 0.33, "--seed", 3,
                     "--label-column", "common_name", "--quiet")
    assert "5 classes" in result.stdout and "1 unreadable file(s)" in result.stdout
    train = pd.read_csv(out / "Train.csv", dtype=str)
    sample = pd.read_csv(out / "SampleSubmission.csv", dtype=str)
    assert list(train.columns) == ["ID", "common_name"]
    # top 5 by count: Cape Batis (12 + the broken download), then four of the five tied
    # at 12, by name; the broken download is ranked, then rejected and reported.
    assert list(sample.columns) == ["ID"] + sorted(CLASSES)[:5]
    ids = pd.concat([train["ID"], sample["ID"]])
    assert ids.is_unique and all(re.fullmatch(r"[A-Z0-9]{6}", i) for i in ids)
    assert list(train["ID"]) == sorted(train["ID"]) and list(sample["ID"]) == sorted(sample["ID"])
    # a third of each class in test, every class on both sides
    solution = pd.read_csv(out / "answers" / "solution.csv")
    per_class_test = solution.drop(columns="ID").sum()
    per_class_train = train["common_name"].value_counts()
    for name in sample.columns[1:]:
        assert per_class_test[name] + per_class_train[name] == PER_CLASS
        assert 3 <= per_class_test[name] <= 5 and per_class_train[name] >= 7
    files = sorted((out / "Train").iterdir()) + sorted((out / "Test").iterdir())
    assert {f.stat().st_mtime for f in files} == {FIXED_TIME}
    assert all(media.tags(f) == {} for f in files[:10])
    infos = [media.audio_info(f) for f in files[:10]]
    assert {(i["kind"], i["sample_rate"], i["channels"]) for i in infos} == {("mp3", 22050, 1)}
    mapping = pd.read_csv(out / "answers" / "mapping.csv")
    assert len(mapping) == len(files) and set(mapping["ID"]) == set(ids)

    audited = compete("host", "audit", out, "--quiet", check=False)
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert "LEAK" not in audited.stdout and "no leak found" in audited.stdout


def test_mask_reads_a_csv_of_file_label_and_keeps_the_split_for_a_seed(compete, source, tmp_path):
    rows = labelled_files(source)
    rows = rows[~rows["file"].str.endswith("broken-download.mp3")]
    listing = tmp_path / "labels.csv"
    rows.assign(file=[os.path.relpath(f, tmp_path) for f in rows["file"]]).to_csv(listing, index=False)
    splits = []
    for attempt in range(2):
        out = tmp_path / f"masked{attempt}"
        compete("host", "mask", listing, "--out", out, "--top", 2, "--seed", 7, "--quiet")
        mapping = pd.read_csv(out / "answers" / "mapping.csv")
        splits.append(dict(zip(mapping["file"], mapping["split"])))
        ids = set(mapping["ID"])
    assert splits[0] == splits[1]  # the seed fixes who is in test
    assert ids.isdisjoint(pd.read_csv(tmp_path / "masked0" / "answers" / "mapping.csv")["ID"])  # ids never repeat


def test_mask_refuses_a_folder_that_is_not_empty_and_bad_sizes(compete, source, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    result = compete("host", "mask", source, "--out", tmp_path / "out", "--top", 2, check=False)
    assert result.returncode == 2 and "not empty" in result.stderr and len(result.stderr.splitlines()) == 1
    result = compete("host", "mask", source, "--out", tmp_path / "new", "--top", 2, "--test-size", 1.5, check=False)
    assert result.returncode == 2 and "--test-size" in result.stderr


def test_images_are_reencoded_without_exif(tmp_path):
    from PIL import Image
    source = tmp_path / "photos"
    for label in ("zebra", "impala"):
        (source / label).mkdir(parents=True)
        for number in range(4):
            image = Image.new("RGB", (32 + number, 24), color=(number * 40, 80, 120))
            exif = Image.Exif()
            exif[0x010E] = f"{label} at dawn"  # ImageDescription
            image.save(source / label / f"{label}{number}.png", exif=exif)
    from common.masking import mask
    result = mask(source, tmp_path / "out", top=2, test_size=0.25, seed=0, quiet=True)
    assert result.train == 6 and result.test == 2
    outputs = sorted((tmp_path / "out").glob("T*/*.jpg"))
    assert len(outputs) == 8
    assert all(media.sniff_file(p) == "jpeg" and media.tags(p) == {} for p in outputs)


def test_random_ids_are_unique_and_avoid_taken_ones():
    taken = {"AAAAAA"}
    ids = random_ids(500, taken)
    assert len(set(ids)) == 500 and "AAAAAA" not in ids


def test_mask_with_a_hidden_test_makes_the_public_and_hidden_pair(compete, source, tmp_path):
    """A code competition's pair: half of each class's test files form the hidden test,
    laid out as the public one under answers/hidden/ (which no runtime shows), and the
    rerun's view shows the hidden Test/ and sample instead of the public ones."""
    from dataclasses import replace

    from common.runtimes import profile, runner

    out = tmp_path / "masked"
    result = compete("host", "mask", source, "--out", out, "--top", 3, "--seed", 5, "--hidden-test", "--quiet")
    hidden = out / "answers" / "hidden"
    public_sample, hidden_sample = pd.read_csv(out / "SampleSubmission.csv"), pd.read_csv(hidden / "SampleSubmission.csv")
    assert f"{len(hidden_sample)} hidden test files" in result.stdout
    assert list(public_sample.columns) == list(hidden_sample.columns)
    assert set(public_sample["ID"]).isdisjoint(hidden_sample["ID"])
    assert {f.stem for f in (out / "Test").iterdir()} == set(public_sample["ID"])
    assert {f.stem for f in (hidden / "Test").iterdir()} == set(hidden_sample["ID"])
    # each class split between the two, the answers of each beside it
    public_answers = pd.read_csv(out / "answers" / "solution.csv").set_index("ID")
    hidden_answers = pd.read_csv(hidden / "answers" / "solution.csv").set_index("ID")
    assert list(hidden_answers.index) == list(hidden_sample["ID"]) and list(public_answers.index) == list(public_sample["ID"])
    assert (public_answers.sum() >= 1).all() and (hidden_answers.sum() >= 1).all()
    # what a rerun shows: the hidden Test/ and sample, not the public ones, and no answers
    view = runner.data_view(replace(profile("snomed-ct"), holds=("**",)), out, hidden)   # a profile holding every public file
    shown = set(view.files)
    assert {f"Test/{f.name}" for f in (hidden / "Test").iterdir()} <= shown
    assert not {f"Test/{f.name}" for f in (out / "Test").iterdir()} & shown
    assert view.files["SampleSubmission.csv"] == hidden / "SampleSubmission.csv" and "Train.csv" in shown
    assert not any(name.startswith("answers/") for name in shown)
