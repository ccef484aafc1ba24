"""Serengeti inference as the hidden-test runtime runs it: ONNX model, JPEGs, one row per
sequence. The code submission's main.py calls `run`; `compete predict` shares
`read_image` and `aggregate`, so the bundle and a local prediction agree.

Written for the Hakuna Ma-data runtime (drivendataorg/ai4earth-serengeti-runtime,
runtime/py-cpu.yml): Python 3.6 syntax, and only numpy, pandas, Pillow and onnxruntime
(1.1) from its environment; no project module, no torch, no tqdm. The tests check it with
the `hakuna-madata` profile (common/runtimes/environment.py).
"""
import csv
import json
import logging
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger("compete")

ID, FILE = "seq_id", "file_name"
TEST_METADATA, SUBMISSION_FORMAT = "test_metadata.csv", "submission_format.csv"
CLIP = 1e-4                   # log loss punishes a confident miss without bound
MODEL, META = "model.onnx", "model.json"
BATCH = 64


def read_image(path, size):
    """The image at `path` as uint8 (height, width, 3) of `size` = (width, height), or
    None when it is missing or cannot be decoded (the caller counts and reports it)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(str(path)) as image:
                # JPEG draft mode decodes at 1/2..1/8 scale straight from the DCT:
                # the real 2048x1536 frames shrink for a fraction of a full decode.
                image.draft("RGB", (size[0] * 2, size[1] * 2))
                image = image.convert("RGB").resize(tuple(size), Image.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError):
        return None


def to_input(array):
    """uint8 (H, W, 3) -> float32 (3, H, W) in [0, 1], the network's input."""
    return np.ascontiguousarray(array, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)


def aggregate(seq_ids, probabilities, readable, prior, sequences, empty):
    """Frame probabilities -> one row per sequence of `sequences` (an array of shape
    (len(sequences), classes)), as the winners did: the mean for each animal, the
    geometric mean for `empty` (the column index `empty`), since one frame with an animal
    is enough to make a sequence not empty. A sequence with no readable frame gets the
    training prior."""
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), CLIP, 1 - CLIP)
    prior = np.clip(np.asarray(prior, dtype=np.float64), CLIP, 1 - CLIP)
    rows = {}
    for index, (seq_id, ok) in enumerate(zip(seq_ids, readable)):
        if ok:
            rows.setdefault(seq_id, []).append(index)
    result = np.tile(prior, (len(sequences), 1))
    for position, seq_id in enumerate(sequences):
        if seq_id in rows:
            frames = probabilities[rows[seq_id]]
            result[position] = frames.mean(axis=0)
            result[position, empty] = np.exp(np.log(frames[:, empty]).mean())
    return result



def find(data_dir, name):
    """`name` in the data folder, loose or one folder down (an unzipped archive's folder)."""
    data_dir = Path(data_dir)
    for candidate in [data_dir / name] + sorted(data_dir.glob("*/" + name)):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("{}: {} not found".format(data_dir, name))


def image_root(data_dir, example):
    """The folder the metadata's relative paths start from: the data folder, or one
    folder down."""
    data_dir = Path(data_dir)
    for candidate in [data_dir] + sorted(p for p in data_dir.iterdir() if p.is_dir()):
        if (candidate / example).exists():
            return candidate
    return data_dir


def read_rows(path):
    with open(str(path), newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


class Model(object):
    """The exported network and what inference needs beside it."""

    def __init__(self, folder):
        import onnxruntime

        folder = Path(folder)
        with open(str(folder / META)) as handle:
            meta = json.load(handle)
        self.classes, self.prior, self.image_size = meta["classes"], np.array(meta["prior"]), tuple(meta["image_size"])
        self.session = onnxruntime.InferenceSession(str(folder / MODEL))
        self.input = self.session.get_inputs()[0].name

    def probabilities(self, batch):
        logits = self.session.run(None, {self.input: batch})[0]
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float32)))


def predict(model, files, root):
    """Sigmoid outputs for every file (zeros where unreadable) and which were readable."""
    width, height = model.image_size
    outputs, readable = [], []
    for start in range(0, len(files), BATCH):
        batch = np.zeros((min(BATCH, len(files) - start), 3, height, width), dtype=np.float32)
        for offset, name in enumerate(files[start:start + BATCH]):
            array = read_image(Path(root) / name, model.image_size)
            readable.append(array is not None)
            if array is not None:
                batch[offset] = to_input(array)
        outputs.append(model.probabilities(batch))
    if not outputs:
        return np.zeros((0, len(model.classes))), np.zeros(0, bool)
    return np.concatenate(outputs), np.array(readable, dtype=bool)


def run(bundle_dir, data_dir, out):
    """What the submission's main.py runs: read the test metadata and the submission
    format in `data_dir`, predict every sequence, write `out` in the format's order."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    model = Model(bundle_dir)
    metadata = [row for row in read_rows(find(data_dir, TEST_METADATA)) if row.get(FILE, "").strip()]
    sample = read_rows(find(data_dir, SUBMISSION_FORMAT))
    columns = [column for column in sample[0].keys() if column != ID] if sample else list(model.classes)
    if columns != list(model.classes):
        raise SystemExit("{}: its columns differ from the model's {} classes".format(SUBMISSION_FORMAT, len(model.classes)))
    files = [row[FILE] for row in metadata]
    root = image_root(data_dir, files[0]) if files else Path(data_dir)
    probabilities, readable = predict(model, files, root)
    sequences = [row[ID] for row in sample]
    result = aggregate([row[ID] for row in metadata], probabilities, readable, model.prior, sequences,
                       list(model.classes).index("empty"))
    unreadable = int((~readable).sum())
    log.info("%d sequences predicted from %d images, %d unreadable", len(sequences), len(files), unreadable)
    with open(str(out), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([ID] + columns)
        for seq_id, row in zip(sequences, result):
            writer.writerow([seq_id] + ["%.6f" % value for value in row])
    return out
