"""Serengeti inference as the hidden-test runtime runs it: ONNX model, JPEGs, one row per
sequence. The code submission's main.py calls `run`; `compete predict` and training
share `read_burst` / `read_sequence` (`read_image`, `stack_frames`, `locate`,
`crop_frames`, `sequence_input`) and `assemble`, so the bundle, a local prediction and
the training inputs agree.

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
CROP = 64                     # pixels of the square the network reads around what moved (crop_frames)
MOTION_FLOOR = 20             # grey levels at 128x96 that count as something moving: an empty burst's noise and
                              # flicker stay under 10 (full-scale synthetic), an animal's over 39
MARGIN = 1.5                  # the crop's side: the moving blob's longer side times this
LEAST = 12                    # the crop's side at least, in pixels of the frames the network reads
BACKGROUND_BURSTS = 64        # bursts at most whose first frame makes a site's background (site_backgrounds)
BACKGROUND_LEAST = 5          # and at least: fewer, and an animal could be the median
BACKGROUND_READS = 4 * BACKGROUND_BURSTS   # frames decoded a camera at most, both kinds together
GREY = 2.0                    # grey levels between colour channels, on average, under which a frame is infrared


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


def motion_map(stack):
    """uint8 (FRAMES, H, W, 3) -> int16 (H, W, 3): the largest difference of any frame
    from the per-pixel median of the frames (the background where an animal walked)."""
    first, second, third = (stack[index].astype(np.int16) for index in range(FRAMES))
    background = np.maximum(np.minimum(first, second), np.minimum(np.maximum(first, second), third))
    return np.maximum(np.maximum(np.abs(first - background), np.abs(second - background)), np.abs(third - background))


def sequence_input(stack):
    """uint8 (FRAMES, H, W, 3) -> float32 (3 * FRAMES + 3, H, W), the network's
    input: every frame's colours, then the motion of the burst, the largest difference
    of any frame from the per-pixel median of the frames. The camera does not move, so
    the median is the background where an animal walked, and the motion lights up
    animals too small or too dark to see in one frame (a burst whose animal stood still
    has none; a single frame is stacked with its camera's background, read_burst).

    Each burst is standardised by its own statistics, every frame alike: a colour
    channel less its mean over the burst, divided (as the motion) by its standard
    deviation over the burst (at least STD_FLOOR grey levels, so a flat frame's noise
    is not blown up). A camera's colour response and a season's light are a gain per
    channel, and its grass height a contrast: divided out, a burst from a camera and a
    season training never saw reads as the ones it did (issue 23). The statistics are
    the burst's own, so the code submission needs no other sequence to compute them."""
    motion = motion_map(stack)
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


def site_key(seq_id):
    """`SER_S1#B04#1#1` -> `SER_S1#B04`: one camera in one season, whose frames share a
    background (the camera is fixed); an id of another shape is its own key."""
    parts = str(seq_id).split("#")
    return "#".join(parts[:2]) if len(parts) == 4 else str(seq_id)


def infrared(frame):
    """Whether a uint8 (H, W, 3) frame is a night shot: grey, its channels alike."""
    colours = frame.astype(np.int16)
    return float(np.abs(colours[..., 0] - colours[..., 1]).mean() + np.abs(colours[..., 1] - colours[..., 2]).mean()) < 2 * GREY


def site_backgrounds(root, groups, size):
    """Each camera's background in the set being read, by day and by night: {site_key:
    {infrared: uint8 (H, W, 3)}}, the per-pixel median of the first readable frame of
    BACKGROUND_BURSTS of its bursts at most (BACKGROUND_LEAST at least; fewer: none).
    Three bursts in four are empty and an animal is elsewhere in each, so the median is
    the scene without animals; a burst of a single frame has no motion of its own, and
    its difference from this background is what moved (read_burst). The same rule for
    the training set (its sites and seasons) and for the set predicted, which the code
    submission reads whole; a background is a camera's own, so one site never lends
    another its scene."""
    frames, read = {}, {}
    for seq_id, files in groups:
        key = site_key(seq_id)
        # enough of both kinds, or of one where the other is rare (a camera seldom out at
        # night): a bounded number of decodes a camera, never the first frame of every burst
        if (sum(len(kinds) for kinds in frames.get(key, {}).values()) >= 2 * BACKGROUND_BURSTS
                or read.get(key, 0) >= BACKGROUND_READS):
            continue
        for name in files:
            frame = read_image(Path(root) / name, size)
            read[key] = read.get(key, 0) + 1
            if frame is not None:
                kinds = frames.setdefault(key, {}).setdefault(infrared(frame), [])
                if len(kinds) < BACKGROUND_BURSTS:
                    kinds.append(frame)
                break
    backgrounds = {key: {kind: np.median(np.stack(stack), axis=0).astype(np.uint8) for kind, stack in kinds.items()
                         if len(stack) >= BACKGROUND_LEAST}
                   for key, kinds in frames.items()}
    return {key: kinds for key, kinds in backgrounds.items() if kinds}


def with_background(frame, background):
    """A single frame's stack against its camera's background: (frame, background,
    background), the background brought to the frame's exposure (its mean per channel),
    so that motion_map is the frame's difference from the scene without animals."""
    colours = background.astype(np.float32)
    gain = (frame.reshape(-1, 3).mean(axis=0) + 1.0) / (colours.reshape(-1, 3).mean(axis=0) + 1.0)
    matched = np.clip(colours * gain + 0.5, 0, 255).astype(np.uint8)
    return np.stack([frame, matched, matched])


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


def locate(stack, cell=4):
    """Where the burst's main moving thing is: (centre x, centre y, side) of the square
    to look closer at, in pixels of the stack's frames, or None when nothing moved (a
    single frame, an empty burst). The moving pixels (motion_map over MOTION_FLOOR) are
    grouped by `cell` x `cell` cells, touching cells (8 ways) into one blob, so the
    pieces of one animal join; the blob with most motion wins, and the square is its
    longer side times MARGIN, at least LEAST."""
    motion = motion_map(stack).max(axis=-1)
    mask = motion > MOTION_FLOOR
    if not mask.any():
        return None
    height, width = mask.shape
    rows, columns = -(-height // cell), -(-width // cell)
    padded = np.zeros((rows * cell, columns * cell), np.int64)
    padded[:height, :width] = np.where(mask, motion, 0)
    weight = padded.reshape(rows, cell, columns, cell).sum(axis=(1, 3))
    label = np.zeros((rows, columns), np.int32)
    best, best_weight = 0, -1
    for start in zip(*np.nonzero(weight)):
        if label[start]:
            continue
        number = label.max() + 1
        label[start], pending, total = number, [start], 0
        while pending:
            y, x = pending.pop()
            total += weight[y, x]
            for yy in range(max(y - 1, 0), min(y + 2, rows)):
                for xx in range(max(x - 1, 0), min(x + 2, columns)):
                    if weight[yy, xx] and not label[yy, xx]:
                        label[yy, xx] = number
                        pending.append((yy, xx))
        if total > best_weight:
            best, best_weight = number, total
    chosen = np.kron(label == best, np.ones((cell, cell), bool))[:height, :width] & mask
    ys, xs = np.nonzero(chosen)
    side = max(float(LEAST), MARGIN * max(ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()))
    return (xs.min() + xs.max() + 1) / 2.0, (ys.min() + ys.max() + 1) / 2.0, side


def square(box, width, height):
    """The (left, top, right, bottom) of `box` (centre x, centre y, side, in this
    frame's pixels) moved inside a width x height frame, its side at most the frame's."""
    centre_x, centre_y, side = box
    side = min(side, width, height)
    left = min(max(centre_x - side / 2.0, 0.0), width - side)
    top = min(max(centre_y - side / 2.0, 0.0), height - side)
    return left, top, left + side, top + side


def crop_frames(root, files, box, size):
    """The square `box` (locate's, in pixels of frames of `size`) cut from each frame of
    `files` at a finer scale and resized to CROP x CROP, as a stack (stack_frames), or
    None when no frame could be read. Each JPEG is decoded at the least size at which the
    square is CROP pixels or more (draft mode): a real 2048x1536 frame at 1/2 to 1/8, a
    fraction of a full decode."""
    from PIL import Image

    scale = CROP / min(box[2], size[1])   # decoded pixels wanted per pixel of the frames the network reads
    crops = []
    for name in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(str(Path(root) / name)) as image:
                    image.draft("RGB", (int(np.ceil(size[0] * scale)), int(np.ceil(size[1] * scale))))
                    image = image.convert("RGB")
                    factor = image.size[0] / float(size[0])
                    corners = square([value * factor for value in box], *image.size)
                    crops.append(np.asarray(image.resize((CROP, CROP), Image.BILINEAR, box=corners), dtype=np.uint8))
        except (OSError, SyntaxError, ValueError):
            continue
    return stack_frames(crops) if crops else None


def middle(stack):
    """The crop stack of a burst where nothing moved: the frames' middle square, resized."""
    from PIL import Image

    height, width = stack.shape[1:3]
    corners = square((width / 2.0, height / 2.0, height), width, height)
    return np.stack([np.asarray(Image.fromarray(frame).resize((CROP, CROP), Image.BILINEAR, box=corners), dtype=np.uint8)
                     for frame in stack])


def read_burst(root, files, size, backgrounds=None):
    """One sequence as the network reads it: its frame stack (read_frames) at `size`,
    the stack of squares around what moved in it at a finer scale (locate, crop_frames;
    the frames' middle square when nothing moved), both uint8, or (None, None) when no
    frame could be read; and the files of it that could not be read. A burst of one
    readable frame is stacked with its camera's background (`backgrounds`: its site's
    entry of site_backgrounds, by infrared; with_background) where there is one, so
    that it has motion and a crop where the animal is too."""
    stack, bad = read_frames(root, files, size)
    if stack is None:
        return None, None, bad
    if len(files) - len(bad) == 1 and backgrounds:
        background = backgrounds.get(infrared(stack[0]))
        if background is not None and background.shape == stack[0].shape:
            stack = with_background(stack[0], background)
    box = locate(stack)
    crops = crop_frames(root, [name for name in files if name not in bad], box, size) if box is not None else None
    return stack, (crops if crops is not None else middle(stack)), bad


def read_sequence(root, files, size, backgrounds=None):
    """The network's two inputs for one sequence (sequence_input of its frames and of
    its crops; None when no frame could be read) and the files of it that could not be
    read; `backgrounds` as read_burst's."""
    stack, crops, bad = read_burst(root, files, size, backgrounds)
    return ((sequence_input(stack), sequence_input(crops)) if stack is not None else None), bad


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
        self.inputs = [node.name for node in self.session.get_inputs()]   # the frames, the crops

    def probabilities(self, frames, crops):
        """The sigmoid outputs averaged over the batch and its mirror image (see mirror)."""
        views = [self.session.run(None, dict(zip(self.inputs, view)))[0]
                 for view in ((frames, crops), (mirror(frames), mirror(crops)))]
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
    backgrounds = site_backgrounds(root, groups, (width, height))
    for start in range(0, len(groups), BATCH):
        inputs, names = [], []
        for seq_id, files in groups[start:start + BATCH]:
            arrays, unreadable = read_sequence(root, files, (width, height), backgrounds.get(site_key(seq_id)))
            bad.extend(unreadable)
            if arrays is not None:
                inputs.append(arrays)
                names.append(seq_id)
        if inputs:
            frames, crops = (np.stack([arrays[part] for arrays in inputs]) for part in (0, 1))
            for seq_id, row in zip(names, model.probabilities(frames, crops)):
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
