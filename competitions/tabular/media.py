"""Media competitions through `PLATFORM:SLUG`: a folder of images (or audio clips) and a
CSV, recognised from the files, trained and predicted through one code path whatever
the medium (common/vision.py's ImageModel, common/sound.py's AudioModel: the same
fit/predict calls).

Layouts recognised (the log says which, and from which files):
- a labels CSV beside a folder of files named by its ids, with or without the
  extension (Kaggle's aerial-cactus-identification: train.csv `id,has_cactus` + train/;
  dog-breed-identification: labels.csv `id,breed`; Zindi's audio challenges); its
  labels are one label a row, several 0/1 label columns, or space-separated tags
  (planet-understanding-the-amazon-from-space: multi-label);
- class-named folders of training files (plant-seedlings-classification:
  train/<Species>/*.png).
Either way the test files are the folder whose files the sample names, in the sample's
order, and the format and metric are read as for a table (competitions/tabular/data.py:
the sample's shape and the labels make the Target; --metric or a guess the log states).
Zipped folders are unpacked once into the cache, bounded (common/io.py safe_extract).

fit: a stratified held-out split (`valid_share`), the model trained on the rest with its
best epoch chosen on the held-out files, then the decision the metric asks for
(temperature for log loss, thresholds from common/thresholds.py for F1 and accuracy)
fitted on the held-out predictions. The CV printed is the held-out score with each half's
decision fitted on the other half only, so nothing scored was fitted on itself except
the epoch chosen.
"""
from __future__ import annotations

import json
import logging
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from common.competition import OutOfFold, Report
from common.metrics import Metric
from common.options import Options, option
from common.submission import SampleLayout, SubmissionFormat, _looks_like_sample
from competitions.tabular import data as D
from competitions.tabular import media_inference as MI

log = logging.getLogger("compete")

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"})
AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".ogg", ".flac", ".aif", ".aiff"})
IGNORED_FOLDERS = frozenset({"answers", "__macosx"})   # the host's answer key is never data
MIN_FILES = 4
MANIFEST = "media.json"
IMAGE_WEIGHTS = "image_model.pt"
AUDIO_MODEL = "audio_model.pkl"


@dataclass
class MediaOptions(Options):
    """The knobs of a media run (images or audio); the tabular options add theirs."""

    minutes: float | None = option(None, "media: training time budget in minutes, the epochs fitted to it from the "
                                         "measured speed of the first batches; None: 10 (with --fast: no budget, the "
                                         "epoch cap alone, so a quick run's bytes never depend on the machine's speed)",
                                   above=0)
    epochs: int | None = option(None, "media: training epochs at most (the budget and early stopping may end sooner); "
                                      "None: 30 (2 with --fast); text: the transformer's fine-tune epochs, None: 3 "
                                      "(2 with --fast)", minimum=1)
    backbone: str = option("small", "media: the network: 'small' (the project's CNN, trained from scratch) or a timm "
                                    "architecture (resnet18, efficientnet_b0, ...) or hub name (timm/resnet18.a1_in1k) "
                                    "read from the Hugging Face cache offline; never downloaded; text: a Hugging Face "
                                    "model folder or cached name fine-tuned beside TF-IDF and NB-SVM (transformer.py)")
    weights: Path | None = option(None, "media: pretrained weights for the backbone, a local state dict (.pth) or "
                                        ".safetensors file; the body then fine-tunes at a tenth of the head's rate")
    image_size: int = option(0, "media: pixels of the square each image is resized to; 0: from the data (median "
                                "shorter side, at most 128 from scratch, 224 pretrained)", minimum=0)
    width: int = option(32, "media: channels of the small CNN's first block", minimum=4, search=(16, 64), log=True)
    lr: float | None = option(None, "media: peak learning rate (one-cycle); None: 1e-2 from scratch, 1e-3 pretrained; "
                                    "text: the transformer's, None: 3e-5",
                              above=0, search=(3e-4, 1e-2), log=True)
    batch_size: int = option(64, "media: files per training batch", minimum=1)
    valid_share: float = option(0.2, "media: share of the labelled files held out (stratified where it can be) for the CV score, the "
                                     "best epoch and the decision", above=0, below=1)
    patience: int = option(6, "media: epochs without a better validation loss before stopping", minimum=1)
    checkpoint_every: int = option(200, "media: batches between checkpoints (a killed run resumes from the last)",
                                   minimum=0)
    workers: int | None = option(None, "media: data loader processes; None: 0 below 2000 files, else up to 2",
                                 minimum=0)


# ---------------------------------------------------------------- the files

def kind_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    return "image" if suffix in IMAGE_SUFFIXES else "audio" if suffix in AUDIO_SUFFIXES else None


def _unpacked(archive: Path) -> Path:
    """A zip of media files unpacked once into the cache, as birdcall's clip folders are."""
    return io.unpacked_once(archive, "media", "unzipped")


def scan(data_dir: Path) -> dict[Path, list[Path]]:
    """Media files by the folder holding them: loose anywhere under `data_dir` (hidden
    folders and answers/ left out) and inside its zips. A zip's folders count as if
    unpacked beside it (train.zip holding train/ reads as train/)."""
    folders: dict[Path, list[Path]] = {}
    roots = [Path(data_dir)]
    for archive in sorted(Path(data_dir).glob("*.zip")):
        try:
            with zipfile.ZipFile(archive) as opened:
                holds_media = any(kind_of(Path(name)) for name in opened.namelist()[:2000])
        except zipfile.BadZipFile:
            raise io.InputError(f"{archive}: cannot be read as a zip") from None
        if holds_media:
            roots.append(_unpacked(archive))
    for root in roots:
        for folder, subfolders, names in os.walk(root):
            subfolders[:] = sorted(s for s in subfolders if not s.startswith(".") and s.lower() not in IGNORED_FOLDERS)
            files = [Path(folder) / name for name in sorted(names) if not name.startswith(".") and kind_of(Path(name))]
            if files:
                folders[Path(folder)] = files
    return folders


@dataclass
class Matched:
    folder: Path
    files: list[Path | None]     # per id, in the CSV's order
    with_extension: bool

    @property
    def found(self) -> int:
        return sum(path is not None for path in self.files)


def match(ids: list[str], folder: Path, files: list[Path]) -> Matched:
    """Each id's file in `folder`: by its whole name, or by its name without the extension."""
    by_name = {path.name: path for path in files}
    by_stem = {path.stem: path for path in files}
    named = [by_name.get(i) for i in ids]
    stemmed = [by_stem.get(i) for i in ids]
    if sum(p is not None for p in named) >= sum(p is not None for p in stemmed):
        return Matched(folder, named, True)
    return Matched(folder, stemmed, False)


def best_match(ids: list[str], folders: dict[Path, list[Path]], exclude=()) -> Matched | None:
    best = None
    for folder, files in folders.items():
        if folder in exclude:
            continue
        found = match(ids, folder, files)
        if found.found and (best is None or found.found > best.found):
            best = found
    return best


@dataclass
class MediaLayout:
    kind: str                   # "image" or "audio"
    shape: str                  # "labels-csv" or "class-folders"
    sample: io.Source
    id_column: str
    value_columns: tuple[str, ...]
    test: Matched
    train_files: list[Path]
    train: pd.DataFrame         # the id column and the label column(s), text, aligned with train_files
    labels: str                 # the labels CSV's name, or the class folders' parent
    root: Path

    def relative(self, folder: Path) -> str:
        try:
            return folder.relative_to(self.root).as_posix()
        except ValueError:   # unpacked from a zip into the cache
            return folder.name

    def describe(self) -> str:
        medium = f"{self.kind}s" if self.kind == "image" else "audio clips"
        if self.shape == "class-folders":
            classes = sorted(self.train.iloc[:, 1].unique())
            where = f"class-named folders under {self.labels}/ ({len(classes)}: {', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''})"
        else:
            where = f"labels CSV {self.labels}"
        naming = "with" if self.test.with_extension else "without"
        return (f"{medium}: {len(self.train_files)} training files labelled by {where}; {len(self.test.files)} test files in "
                f"{self.relative(self.test.folder)}/ named by {self.sample.name}'s {self.id_column!r} ({naming} the extension)")


def recognise(data_dir: Path) -> MediaLayout | None:
    """The media layout of `data_dir`, or None when it holds fewer than MIN_FILES media
    files (a table). A folder of media with no way to tell its labels or its test files
    is one error saying what was found (D.NoTrainFile where nothing says which files
    are labelled: validating a submission needs only the sample)."""
    data_dir = Path(data_dir)
    folders = scan(data_dir)
    count = sum(len(files) for files in folders.values())
    if count < MIN_FILES:
        return None
    kinds = [kind_of(path) for files in folders.values() for path in files]
    kind = max(("image", "audio"), key=kinds.count)
    sources = io.csv_sources(data_dir)
    if not sources:
        raise io.InputError(f"{data_dir}: {count} {kind} files but no CSV (a sample submission naming the test files is needed)")
    headers = {source: [str(c) for c in io.read_csv(source, nrows=0).columns] for source in sources}
    ordered = sorted(sources, key=lambda s: (not _looks_like_sample(s.name), "train" in s.name.lower() or "label" in s.name.lower()))
    sample, test, partial = None, None, None
    for source in ordered:
        if len(headers[source]) < 2:
            continue
        ids = _ids(source, headers[source][0])
        found = best_match(ids, folders)
        if found is not None and found.found == len(ids):
            sample, test = source, found
            break
        if found is not None and _looks_like_sample(source.name) and partial is None:
            partial = (source, found, ids)
    if sample is None:
        if partial is not None:
            source, found, ids = partial
            absent = [i for i, path in zip(ids, found.files) if path is None]
            raise io.InputError(f"{source}: {len(absent)} of its {len(ids)} ids name no file in {found.folder} "
                                f"(first: {absent[0]!r}): the test folder does not match the sample")
        raise D.NoTrainFile(f"{data_dir}: {count} {kind} files in {len(folders)} folder(s), but no CSV names the files "
                            f"of one folder in its first column (the sample submission and its test folder)")
    id_column, values = headers[sample][0], tuple(headers[sample][1:])
    others = {folder: files for folder, files in folders.items() if folder != test.folder}
    layout = _labels_csv(sample, test, ordered, headers, others, data_dir, kind, id_column, values) or \
        _class_folders(sample, test, others, data_dir, kind, id_column, values)
    if layout is None:
        raise D.NoTrainFile(f"{data_dir}: {count - len(test.files)} {kind} files beside the test folder "
                            f"{test.folder.name}/, but no labels for them: no CSV names them with labels, and they "
                            f"are not in class-named folders")
    return layout


def _ids(source: io.Source, column: str) -> list[str]:
    return io.read_csv(source, usecols=[column], dtype=str, keep_default_na=False)[column].tolist()


def _labels_csv(sample, test, sources, headers, others, data_dir, kind, id_column, values) -> MediaLayout | None:
    best = None
    for source in sources:
        if source == sample:
            continue
        for column in headers[source][:3]:
            ids = _ids(source, column)
            found = best_match(ids, others)
            if found is None or found.found * 2 < len(ids):
                continue
            # a CSV naming every file of the folder beats one naming more ids of which some are
            # missing (a host's answers/ list of every clip, say, beside the training labels)
            rank = (found.found == len(ids), found.found)
            if best is None or rank > best[4]:
                best = (source, column, found, ids, rank)
    if best is None:
        return None
    source, column, found, ids, _ = best
    absent = [i for i, path in zip(ids, found.files) if path is None]
    if absent:
        raise io.InputError(f"{source}: {len(absent)} of its {len(ids)} ids name no file in {found.folder} "
                            f"(first: {column} {absent[0]!r})")
    train = io.read_csv(source, dtype=str, keep_default_na=False, na_values=[""])
    duplicated = train[column][train[column].duplicated()]
    if len(duplicated):
        raise io.InputError(f"{source}: id {duplicated.iloc[0]!r} ({column}) appears more than once")
    train = train.rename(columns={column: id_column}) if column != id_column else train
    return MediaLayout(kind, "labels-csv", sample, id_column, values, test, list(found.files), train, source.name, data_dir)


def _class_folders(sample, test, others, data_dir, kind, id_column, values) -> MediaLayout | None:
    parents: dict[Path, list[Path]] = {}
    for folder in others:
        if test.folder not in folder.parents:
            parents.setdefault(folder.parent, []).append(folder)
    candidates = [(parent, children) for parent, children in parents.items() if len(children) >= 2]
    if not candidates or len(values) != 1:
        return None
    parent, children = max(candidates, key=lambda item: sum(len(others[c]) for c in item[1]))
    files, labels = [], []
    for child in sorted(children):
        files += others[child]
        labels += [child.name] * len(others[child])
    names = [path.name if test.with_extension else path.stem for path in files]
    train = pd.DataFrame({id_column: names, values[0]: labels})
    relative = parent.relative_to(data_dir).as_posix() if parent.is_relative_to(data_dir) else parent.name
    return MediaLayout(kind, "class-folders", sample, id_column, values, test, files, train, relative or ".", data_dir)


# ---------------------------------------------------------------- what is learned

@dataclass
class MediaData:
    layout: MediaLayout
    target: D.Target
    tags: bool                  # the label column holds space-separated tags (multi-label)
    sample: pd.DataFrame
    y: np.ndarray
    source: Path
    metric: Metric | None = None            # the folder's metric and format, as TabularData's
    submission: SubmissionFormat | None = None

    @property
    def id_column(self) -> str:
        return self.layout.id_column


def is_tags(labels: pd.Series) -> bool:
    """Space-separated tags rather than one label a row: some cells hold several words,
    and the words recombine, most of them found in more than one distinct cell ('clear
    primary', 'haze primary water'). Multi-word class names do not: of Kaggle's plant
    seedlings ('Common Chickweed', 'Common wheat', 'Fat Hen', ...) one word in twenty does."""
    cells = pd.Series(labels.dropna().astype(str).unique())
    if not (cells.str.split().str.len() > 1).any():
        return False
    counts: dict[str, int] = {}
    for cell in cells:
        for word in set(cell.split()):
            counts[word] = counts.get(word, 0) + 1
    return sum(count > 1 for count in counts.values()) >= len(counts) / 2


def tag_matrices(truth: pd.Series, predicted: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Tag cells as 0/1 matrices over every tag either side uses (for scoring)."""
    def words(cells):
        return [set(str(cell).split()) for cell in cells.fillna("")]
    true_sets, predicted_sets = words(truth), words(predicted)
    vocabulary = sorted(set().union(*true_sets, *predicted_sets))
    return tuple(np.array([[tag in row for tag in vocabulary] for row in sets], dtype=int)
                 for sets in (true_sets, predicted_sets))


def load(data_dir: Path, layout: MediaLayout, metric) -> MediaData:
    sample = io.read_csv(layout.sample, dtype=str, keep_default_na=False)
    train = layout.train
    values = list(layout.value_columns)
    label_column = values[0] if values[0] in train.columns else None
    if len(values) == 1 and label_column is None:
        extra = [c for c in train.columns if c != layout.id_column]
        label_column = extra[0] if len(extra) == 1 else None
    if len(values) == 1 and label_column is not None and is_tags(train[label_column]):
        missing = train[label_column].isna()
        if missing.any():
            raise io.InputError(f"{layout.labels}: id {train[layout.id_column][missing].iloc[0]!r} has no tags")
        tags = sorted({word for cell in train[label_column] for word in str(cell).split()})
        target = D.Target("multilabel", tags, values, tags)
        y = np.array([[tag in str(cell).split() for tag in tags] for cell in train[label_column]], dtype=int)
        rare = [tag for j, tag in enumerate(tags) if y[:, j].min() == y[:, j].max()]
        if rare:
            raise io.InputError(f"{layout.labels}: tag {rare[0]!r} is on every file or on none: nothing to learn for it")
        return MediaData(layout, target, True, sample, y, Path(data_dir))
    sample_layout = SampleLayout(layout.sample, layout.id_column, tuple(values), layout.sample)
    target = D.infer_target(train, [layout.id_column], sample_layout, layout.labels, metric)
    missing = train[target.columns].isna().any(axis=1)
    if missing.any():
        raise io.InputError(f"{layout.labels}: id {train[layout.id_column][missing].iloc[0]!r} has no "
                            f"{target.columns[0]!r} ({int(missing.sum())} files without a label)")
    if target.task == "multilabel":
        y = train[target.columns].apply(pd.to_numeric).to_numpy(dtype=int)
    elif target.task == "regression":
        raise io.InputError(f"{layout.labels}: {target.columns[0]!r} holds numbers, a regression target: media "
                            f"competitions are classified here (pass --metric accuracy, auc, logloss or f1 if it is a class)")
    else:
        index = {value: i for i, value in enumerate(target.classes)}
        y = train[target.columns[0]].map(index).to_numpy(dtype=int)
    return MediaData(layout, target, False, sample, y, Path(data_dir))


def metric_name(data: MediaData, given: str | None) -> str:
    """--metric, or a guess from the sample (as a table's), F1 for tags."""
    if given:
        return given
    name = "f1" if data.tags else D.guess_metric(data.target, data.sample)
    log.info("no --metric given; %s guessed from the sample (pass --metric to choose)", name)
    return name


def submission_format(data_or_meta, metric) -> SubmissionFormat:
    meta = data_or_meta if isinstance(data_or_meta, dict) else describe_target(data_or_meta)
    if meta["tags"]:
        return SubmissionFormat(meta["sample"], id_column=meta["id_column"], domain="label")
    from competitions.tabular import inference
    target = D.Target(meta["task"], meta["columns"], meta["sample_columns"], meta["classes"], meta["class_columns"])
    return inference.submission_format(target, metric, meta["sample"], meta["id_column"])


def describe_target(data: MediaData) -> dict:
    """What inference needs to know of the files and the format (model.json)."""
    layout, target = data.layout, data.target
    return {"task": target.task, "columns": list(target.columns), "sample_columns": list(target.sample_columns),
            "classes": [str(c) for c in target.classes], "class_columns": list(target.class_columns),
            "tags": data.tags, "sample": layout.sample.name, "id_column": layout.id_column,
            "test_folder": layout.relative(layout.test.folder), "with_extension": layout.test.with_extension,
            "kind": layout.kind}


# ---------------------------------------------------------------- fit and predict

@dataclass
class MediaModel:
    """The trained network (ImageModel or AudioModel) and what turns its probabilities into
    the submission: the target's description and the decision fitted on held-out files."""

    network: object
    meta: dict
    metric: str
    decision: dict = field(default_factory=dict)


def model_for(kind: str, task: str, classes: list, options):
    """The medium's model: one interface (fit, predict) for both."""
    if kind == "audio":
        try:
            from common.sound import AudioModel
        except ImportError:
            raise io.InputError("audio files found: the audio model (common/sound.py) is not part of this build") from None
        return AudioModel(task, classes, options)
    from common.vision import ImageModel
    return ImageModel(task, classes, options)


def stratifiable(y: np.ndarray, task: str, share: float) -> bool:
    """Whether scikit-learn can stratify the held-out split: two files a class, and a
    held-out part with room for every class."""
    if task not in ("binary", "multiclass"):
        return False
    return np.bincount(y).min() >= 2 and round(share * len(y)) >= len(np.unique(y))


def holdout(y: np.ndarray, task: str, share: float, seed: int) -> np.ndarray:
    """The held-out mask: stratified by class where it can be (`stratifiable`), else at random."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(y))
    stratify = y if stratifiable(y, task, share) else None
    _, held = train_test_split(positions, test_size=share, random_state=seed, stratify=stratify)
    mask = np.zeros(len(y), dtype=bool)
    mask[held] = True
    return mask


def score_values(meta: dict, metric, decided: np.ndarray) -> np.ndarray:
    """Decided predictions on the scale the metric scores (class indices for labels)."""
    if metric.output == "probability" and meta["task"] != "multilabel":
        return np.clip(decided, 1e-6, 1 - 1e-6)
    return decided


def fit(competition, data: MediaData, options, run_dir: Path):
    from common import distributed, plots
    from competitions.tabular import model as M

    started = time.perf_counter()
    run_dir = Path(run_dir)
    metric, task = data.metric, data.target.task
    meta = {**describe_target(data), "output": metric.output}
    classes = list(data.target.classes) if task != "multilabel" else list(data.target.columns)
    held = holdout(data.y, task, options.valid_share, options.seed)
    files = np.asarray(data.layout.train_files, dtype=object)
    log.info("%s: layout %s", competition.name, data.layout.describe())
    log.info("%s: %s, %d classes/labels, metric %s; %d files train, %d held out (%.0f%%, %s)", competition.name, task,
             len(classes), metric.name, int((~held).sum()), int(held.sum()), 100 * options.valid_share,
             "stratified" if stratifiable(data.y, task, options.valid_share) else "at random")
    network = model_for(data.layout.kind, task, classes, options)
    network.fit(list(files[~held]), data.y[~held], run_dir, options.quiet, valid=(list(files[held]), data.y[held]))
    if not distributed.is_main():
        # under torchrun a rank > 0 trained beside rank 0 (common/runs.py drops what it
        # returns): the held-out predictions, plots and report are rank 0's alone
        return MediaModel(network, meta, metric.name), None
    predicted = network.predict(list(files[held]))
    truth = data.y[held]

    # The decision fitted on the held-out predictions; the CV scores each half with the
    # decision fitted on the other half, so no score is of a decision fitted on itself.
    halves = np.random.default_rng(options.seed).permutation(len(truth)) % 2
    honest = None
    for half in (0, 1):
        fitted = decision_dict(M.fit_decision(task, metric, truth[halves != half], predicted[halves != half]))
        decided = MI.decide(fitted, predicted[halves == half], data.tags)
        if honest is None:
            honest = np.zeros((len(truth), *decided.shape[1:]), dtype=float)
        honest[halves == half] = decided
    decision = decision_dict(M.fit_decision(task, metric, truth, predicted))
    cv_score = metric(truth, score_values(meta, metric, honest))
    trained = data.y[~held]
    prior = np.bincount(trained, minlength=len(classes)) / len(trained) if task == "multiclass" else \
        np.atleast_1d(trained.mean(axis=0).astype(float))
    constant = np.tile(prior, (len(truth), 1))
    constant = constant[:, 0] if task == "binary" else constant
    baseline = metric(truth, score_values(meta, metric, MI.decide(decision_dict(
        M.fit_decision(task, metric, truth, constant)), constant)))
    log.info("%s: cv %s %.5f on the held-out files (decision: %s); class-prior baseline %.5f", competition.name,
             metric.name, cv_score, M.Decision(**decision).words(), baseline)

    model = MediaModel(network, meta, metric.name, decision)
    title = plots.cv_title(competition.name, metric.name, cv_score)
    plots.training_curves({"network": run_dir / "history.csv"}, run_dir / "training_curves.png", f"{title}: loss by epoch")
    if task in ("binary", "multiclass"):
        most = predicted.argmax(axis=1) if predicted.ndim == 2 else (predicted >= decision.get("threshold", 0.5)).astype(int)
        plots.confusion_matrix(truth, most, [str(c) for c in classes], run_dir / "confusion_matrix.png",
                               f"{title}: held-out confusion")
    else:
        from sklearn.metrics import roc_auc_score
        scores = {str(label): float(roc_auc_score(truth[:, j], predicted[:, j])) for j, label in enumerate(classes)
                  if len(np.unique(truth[:, j])) == 2}
        plots.per_label_scores(scores, run_dir / "per_label_auc.png", f"{title}: held-out AUC by label", "ROC AUC")

    ids = data.layout.train[data.id_column].to_numpy()[held]
    out_of_fold = None
    if metric.output != "label" and not data.tags:
        # held-out rows only: what `compete blend` combines with other runs' predictions of them
        shaped = np.eye(len(classes))[truth] if task == "multiclass" else truth.astype(float)
        out_of_fold = OutOfFold(frame(meta, ids, score_values(meta, metric, MI.decide(decision, predicted))),
                                frame(meta, ids, shaped), halves)   # the halves: a blend's weights fitted on one, scored on the other
    decisions = dict(layout=data.layout.describe(), layout_shape=data.layout.shape, medium=data.layout.kind, task=task,
                     tags=data.tags, classes=[str(c) for c in classes], metric_guessed=competition.metric_name is None,
                     prior_baseline=round(float(baseline), 6), decision=decision, held_out=int(held.sum()),
                     trained_on=int((~held).sum()), valid_share=options.valid_share,
                     media_seconds=round(time.perf_counter() - started, 2), **getattr(network, "decisions", {}))
    report = Report(cv_score=cv_score, fold_scores=[cv_score], out_of_fold=out_of_fold,
                    note=f"held-out split: {options.valid_share:.0%} of the labelled files "
                         f"({'stratified' if stratifiable(data.y, task, options.valid_share) else 'at random'}), "
                         f"never trained on; the best epoch "
                         f"is chosen on them too; the decision for each half fitted on the other half",
                    decisions=decisions)
    return model, report


def frame(meta: dict, ids, values) -> pd.DataFrame:
    """The submission-shaped frame of decided predictions (media_inference.columns)."""
    return pd.DataFrame({meta["id_column"]: np.asarray(ids, dtype=object), **MI.columns(meta, values)})


def decision_dict(decision) -> dict:
    return {"kind": decision.kind, "temperature": float(decision.temperature), "threshold": float(decision.threshold),
            "per_class": [float(t) for t in decision.per_class]}


def predict(model: MediaModel, data: MediaData) -> pd.DataFrame:
    """The submission frame: every sample id's file scored (a file that cannot be read
    gets the training prior, counted in the log), decided as in training."""
    probabilities = model.network.predict(list(data.layout.test.files))
    decided = MI.decide(model.decision, probabilities, model.meta["tags"])
    if model.meta["output"] == "probability" and model.meta["task"] != "multilabel":
        decided = np.clip(decided, 1e-6, 1 - 1e-6)
    ids = data.sample[data.id_column].astype(str).to_numpy()
    return frame(model.meta, ids, decided)


# ---------------------------------------------------------------- persistence

def save(model: MediaModel, run_dir: Path, profile: str | None) -> None:
    run_dir = Path(run_dir)
    network = model.network
    if model.meta["kind"] == "image":
        network.save(run_dir / IMAGE_WEIGHTS)
        network.export(run_dir, MI.MODEL, MI.SCRIPT, MI.NETWORK, profile)
    else:
        import pickle

        from common import sound
        from competitions.tabular import audio_inference

        io.write_bytes(run_dir / AUDIO_MODEL, pickle.dumps(network))
        sound.export(network, run_dir / audio_inference.MODEL, profile=profile)
    io.write_text(run_dir / MI.META, json.dumps({**model.meta, "metric": model.metric, "decision": model.decision},
                                                indent=1) + "\n")


def bundle(run_dir: Path, profile) -> tuple[str, tuple[str, ...]]:
    """The package's entry and run files for a media run (profile: a common.runtimes
    Profile, or None)."""
    if json.loads((Path(run_dir) / MI.META).read_text())["kind"] == "image":
        return "competitions.tabular.media_inference:run", MI.files_for(profile)
    from competitions.tabular import audio_inference
    return "competitions.tabular.audio_inference:run", audio_inference.files_for(profile)


def is_media_run(run_dir: Path) -> bool:
    return (Path(run_dir) / MI.META).is_file()


def load_model(run_dir: Path) -> MediaModel:
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / MI.META).read_text())
    if meta["kind"] == "image":
        from common.vision import ImageModel
        network = ImageModel.load(run_dir / IMAGE_WEIGHTS)
    else:
        network = io.read_pickle(run_dir / AUDIO_MODEL, "run `compete fit` first")
    return MediaModel(network, meta, meta["metric"], meta["decision"])
