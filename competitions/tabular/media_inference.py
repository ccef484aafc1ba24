"""Media inference from a run's files alone, as a code submission runs it: the sample
names the test files, the exported network scores each (and its mirror), the decision
fitted in training makes the submission's values, written in the sample's order.

Imports nothing but numpy, Pillow (common/images.py) and onnxruntime, or, where the
runtime lacks onnxruntime (Kaggle's image), torch for the TorchScript copy of the same
network: both imports are optional, so the environment check asks for neither. The
decision and the submission's columns are computed here for `compete predict` too
(competitions/tabular/media.py), so the two agree.
"""
import csv
import json
import logging
from pathlib import Path

import numpy as np

from common import images

log = logging.getLogger("compete")

MODEL, SCRIPT, NETWORK, META = "model.onnx", "model.torchscript.pt", "network.json", "media.json"
FILES = (MODEL, SCRIPT, NETWORK, META)


def network_file(profile, onnx, script):
    """The form of the network a package ships for a runtime (a common.runtimes Profile, or
    None): the ONNX file where the runtime has onnxruntime, else its TorchScript copy."""
    return script if profile is not None and not profile.version_of("onnxruntime")[0] else onnx


def files_for(profile):
    """The run files a package of an image run ships for a runtime."""
    return (network_file(profile, MODEL, SCRIPT), NETWORK, META)
BATCH = 32

def _onnxruntime():
    """onnxruntime where installed (not in Kaggle's image: the TorchScript copy instead);
    imported when a network is loaded, so reading this module costs nothing."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def _torch():
    """torch, imported only when the TorchScript copy is run (a second of start-up saved)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def decide(decision, probabilities, tags=False):
    """The decision fitted in training (competitions/tabular/model.py Decision, as a
    dict) applied with numpy: calibrated probabilities, labels by threshold, the most
    probable class, or labels by per-label thresholds (tags: at least the likeliest one)."""
    kind = decision.get("kind", "identity")
    p = np.asarray(probabilities, dtype=np.float64)
    if kind == "temperature":
        clipped = np.clip(p, 1e-12, 1 - 1e-12)
        if clipped.ndim == 1:
            logits = (np.log(clipped) - np.log1p(-clipped)) / decision["temperature"]
            return 1.0 / (1.0 + np.exp(-logits))
        logits = np.log(clipped) / decision["temperature"]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
    if kind == "threshold":
        return (p >= decision["threshold"]).astype(int)
    if kind == "argmax":
        return np.argmax(p, axis=1)
    if kind == "per_class":
        thresholds = np.asarray(decision["per_class"])[None, :]
        labels = (p >= thresholds).astype(int)
        if tags and len(labels):
            empty = labels.sum(axis=1) == 0
            labels[empty, np.argmax(p[empty] - thresholds, axis=1)] = 1
        return labels
    return p


def columns(meta, values):
    """The submission's value columns (name -> values) from decided predictions: labels
    (class indices, 0/1 per label) when the metric scores labels, else probabilities."""
    values = np.asarray(values)
    classes, label = meta["classes"], meta.get("output") == "label"
    if meta["tags"]:
        return {meta["sample_columns"][0]: [" ".join(t for t, on in zip(classes, row) if on) for row in values]}
    if meta["task"] == "multilabel":
        return {column: values[:, j].tolist() for j, column in enumerate(meta["columns"])}
    if label:
        return {meta["sample_columns"][0]: [classes[int(v)] for v in values]}
    if meta["class_columns"]:
        matrix = values if values.ndim == 2 else np.column_stack([1 - values, values])
        return {column: matrix[:, i].tolist() for i, column in enumerate(meta["class_columns"])}
    return {meta["sample_columns"][0]: values.tolist()}


class Network(object):
    """The exported network: onnxruntime on model.onnx where installed, else torch on
    the TorchScript copy."""

    def __init__(self, folder):
        folder = Path(folder)
        with open(str(folder / NETWORK)) as handle:
            self.meta = json.load(handle)
        self.size, self.task = int(self.meta["image_size"]), self.meta["task"]
        self.prior = np.asarray(self.meta["prior"], dtype=np.float64)
        onnxruntime = _onnxruntime()
        if onnxruntime is not None and (folder / MODEL).is_file():
            self.session = onnxruntime.InferenceSession(str(folder / MODEL), providers=["CPUExecutionProvider"])
            self.input = self.session.get_inputs()[0].name
            self.script = None
        elif _torch() is not None and (folder / SCRIPT).is_file():
            torch = _torch()
            self.session, self.script = None, torch.jit.load(str(folder / SCRIPT), map_location="cpu").eval()
        else:
            raise SystemExit("{}: neither {} with onnxruntime nor {} with torch: the network cannot run".format(
                folder, MODEL, SCRIPT))

    def logits(self, batch):
        if self.session is not None:
            return self.session.run(None, {self.input: batch})[0]
        with _torch().no_grad():
            return self.script(_torch().from_numpy(batch)).numpy()

    def probabilities(self, batch):
        """Probabilities averaged over each input and its mirror (as training's flips)."""
        views = [images.probabilities(self.task, self.logits(view)) for view in (batch, images.mirror(batch))]
        return np.mean(views, axis=0)

    def predict(self, files):
        """A row of probabilities per file (the prior for a file missing or unreadable),
        and the files that could not be read."""
        rows, bad = np.tile(self.prior, (len(files), 1)), []
        for start in range(0, len(files), BATCH):
            arrays, positions = [], []
            for position in range(start, min(start + BATCH, len(files))):
                path = files[position]
                try:
                    if path is None:
                        raise images.UnreadableImage("missing")
                    arrays.append(images.network_input(images.read_image(path, self.size)))
                    positions.append(position)
                except images.UnreadableImage as error:
                    bad.append("{} ({})".format(path, error))
            if arrays:
                rows[positions] = self.probabilities(np.stack(arrays)).reshape(len(arrays), -1)
        return (rows[:, 0] if self.task == "binary" else rows), bad


def find(data_dir, name, folder=False):
    """`name` in the data folder: loose, or one or two folders down (the platform's own
    folder, an unzipped archive's)."""
    data_dir = Path(data_dir)
    for candidate in [data_dir / name] + sorted(data_dir.glob("*/" + name)) + sorted(data_dir.glob("*/*/" + name)):
        if (candidate.is_dir() if folder else candidate.is_file()):
            return candidate
    raise FileNotFoundError("{}: {} not found".format(data_dir, name))


def test_files(data_dir, meta, ids):
    """Each id's file in the test folder (None where there is none)."""
    folder = find(data_dir, meta["test_folder"], folder=True)
    listing = [path for path in folder.iterdir() if path.is_file()]
    by = {(path.name if meta["with_extension"] else path.stem): path for path in listing}
    return [by.get(i) for i in ids]


def run(bundle_dir, data_dir, out, network=None):
    """What the package runs: the sample's ids, their files, the network's probabilities,
    the decision, the submission in the sample's order and header. `network`: the class
    that loads the bundle's network (default the image `Network`; audio_inference's for
    audio), with `predict(files) -> (probabilities, unreadable files)`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    bundle_dir = Path(bundle_dir)
    with open(str(bundle_dir / META)) as handle:
        meta = json.load(handle)
    with open(str(find(data_dir, meta["sample"])), newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        ids = [row[0] for row in reader if row]
    network = (network or Network)(bundle_dir)
    predicted, bad = network.predict(test_files(data_dir, meta, ids))
    decided = decide(meta["decision"], predicted, meta["tags"])
    if meta.get("output") == "probability" and meta["task"] != "multilabel":
        decided = np.clip(decided, 1e-6, 1 - 1e-6)
    values = columns(meta, decided)
    log.info("%d test files predicted, %d missing or unreadable (given the training prior)%s", len(ids), len(bad),
             ": " + "; ".join(bad[:3]) if bad else "")
    with open(str(out), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for position, identifier in enumerate(ids):
            writer.writerow([identifier] + [_text(values[column][position]) for column in header[1:]])
    return out


def _text(value):
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)
