"""Serengeti inference as the hidden-test runtime runs it: ONNX model, JPEGs, one row per
sequence. The code submission's main.py calls `run`; `compete predict` and training
share `read_sequence` (`read_image`, `stack_frames`, `sequence_input`) and `assemble`,
so the bundle, a local prediction and the training inputs agree.

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
BATCH = 16                    # sequences per ONNX call
FRAMES = 3                    # a burst is 1-3 shots
STD_FLOOR = 4.0               # grey levels: the least standard deviation a burst is divided by (sequence_input)


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


def stack_frames(frames):
    """The 1-3 readable frames of a sequence (uint8 (H, W, 3) each) as the fixed stack
    of FRAMES the network reads, uint8 (FRAMES, H, W, 3): a shorter burst repeats its
    frames in turn (1 frame: a a a; 2 frames: a b a)."""
    return np.stack([frames[index % len(frames)] for index in range(FRAMES)])


def sequence_input(stack):
    """uint8 (FRAMES, H, W, 3) -> float32 (3 * FRAMES + 3, H, W), the network's
    input: every frame's colours, then the motion of the burst, the largest difference
    of any frame from the per-pixel median of the frames. The camera does not move, so
    the median is the background where an animal walked, and the motion lights up
    animals too small or too dark to see in one frame (a single frame, or a burst whose
    animal stood still, has none).

    Each burst is standardised by its own statistics, every frame alike: a colour
    channel less its mean over the burst, divided (as the motion) by its standard
    deviation over the burst (at least STD_FLOOR grey levels, so a flat frame's noise
    is not blown up). A camera's colour response and a season's light are a gain per
    channel, and its grass height a contrast: divided out, a burst from a camera and a
    season training never saw reads as the ones it did (issue 23). The statistics are
    the burst's own, so the code submission needs no other sequence to compute them."""
    first, second, third = (stack[index].astype(np.int16) for index in range(FRAMES))
    background = np.maximum(np.minimum(first, second), np.minimum(np.maximum(first, second), third))
    motion = np.maximum(np.maximum(np.abs(first - background), np.abs(second - background)), np.abs(third - background))
    colours = stack.astype(np.float32)
    mean = colours.mean(axis=(0, 1, 2))
    scale = np.float32(1.0) / np.maximum(colours.std(axis=(0, 1, 2)), np.float32(STD_FLOOR))
    channels = np.concatenate([(colours[index] - mean) * scale for index in range(FRAMES)]
                              + [motion.astype(np.float32) * scale], axis=-1)
    return np.ascontiguousarray(channels.transpose(2, 0, 1), dtype=np.float32)


def assemble(sequences, predicted, prior):
    """One row per sequence of `sequences` (an array of shape (len(sequences),
    classes)): its predicted probabilities (`predicted`: seq_id -> row), or the
    training prior for a sequence with no readable frame; clipped to [CLIP, 1 - CLIP]."""
    prior = np.clip(np.asarray(prior, dtype=np.float64), CLIP, 1 - CLIP)
    result = np.tile(prior, (len(sequences), 1))
    for position, seq_id in enumerate(sequences):
        if seq_id in predicted:
            result[position] = np.clip(np.asarray(predicted[seq_id], dtype=np.float64), CLIP, 1 - CLIP)
    return result


def group_sequences(seq_ids, files):
    """[(seq_id, [file, ...]), ...] in the order each sequence first appears."""
    groups = {}
    for seq_id, name in zip(seq_ids, files):
        groups.setdefault(seq_id, []).append(name)
    return list(groups.items())


def read_frames(root, files, size):
    """The frame stack of one sequence (stack_frames of its readable frames, or None
    when none could be read) and the files of it that could not be read."""
    frames, bad = [], []
    for name in files:
        array = read_image(Path(root) / name, size)
        if array is None:
            bad.append(name)
        else:
            frames.append(array)
    return (stack_frames(frames) if frames else None), bad


def read_sequence(root, files, size):
    """The network's input for one sequence (None when no frame could be read) and
    the files of it that could not be read."""
    stack, bad = read_frames(root, files, size)
    return (sequence_input(stack) if stack is not None else None), bad


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
        """The sigmoid outputs averaged over the batch and its mirror image (see mirror)."""
        views = [self.session.run(None, {self.input: view})[0] for view in (batch, mirror(batch))]
        return np.mean([1.0 / (1.0 + np.exp(-logits.astype(np.float32))) for logits in views], axis=0)


def mirror(batch):
    """A batch of network inputs (N, C, H, W) seen in a mirror, left to right. Training
    mirrors every sequence at random, so the network's answer is averaged over both views
    (on the full-scale synthetic test season: mean log loss 0.01113 -> 0.01107)."""
    return np.ascontiguousarray(batch[..., ::-1])


def predict(model, groups, root):
    """Sigmoid outputs for every sequence of `groups` (seq_id, files) with a readable
    frame (seq_id -> row), and the files that could not be read."""
    width, height = model.image_size
    predicted, bad = {}, []
    for start in range(0, len(groups), BATCH):
        inputs, names = [], []
        for seq_id, files in groups[start:start + BATCH]:
            array, unreadable = read_sequence(root, files, (width, height))
            bad.extend(unreadable)
            if array is not None:
                inputs.append(array)
                names.append(seq_id)
        if inputs:
            for seq_id, row in zip(names, model.probabilities(np.stack(inputs))):
                predicted[seq_id] = row
    return predicted, bad


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
    groups = group_sequences([row[ID] for row in metadata], [row[FILE] for row in metadata])
    root = image_root(data_dir, groups[0][1][0]) if groups else Path(data_dir)
    predicted, bad = predict(model, groups, root)
    sequences = [row[ID] for row in sample]
    result = assemble(sequences, predicted, model.prior)
    log.info("%d sequences predicted from %d images, %d unreadable", len(sequences), len(metadata), len(bad))
    with open(str(out), "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([ID] + columns)
        for seq_id, row in zip(sequences, result):
            writer.writerow([seq_id] + ["%.6f" % value for value in row])
    return out
