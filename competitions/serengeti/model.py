"""The Serengeti sequence model: a small multi-label CNN (the empty label a sigmoid,
the species a softmax over what is not empty: exclusive_logits) that reads a whole
burst at once, and its export for the code submission (ONNX, run by
competitions/serengeti/inference.py in the hidden-test runtime).

Chosen for the real frames, where many animals are far away: the network reads each
burst at 128x96 (the real 2048x1536 frame decoded at 1/8 scale by the JPEG's DCT, then
halved), all its frames stacked as channels with their motion
(inference.sequence_input: the difference from the burst's per-pixel median, which
finds what moved against the fixed camera's background: a far animal of 2.5% of the
frame's height is ~2 pixels high here, but it moves), and pools its last features by
max as well as mean, so one small animal anywhere in the frame can decide. Why not
256x192: measured on the full synthetic scale (1 thread, same 6 epochs), 256x192
scored 0.498 x the class prior on the validation season in 678 s, 128x96 0.484 in
360 s; under a training time budget the steps count for more than the resolution.
A 2x2 stride-2 first layer puts the first features at 64x48 either way (~70 M
multiply-adds a burst).

What tells species apart (coat pattern, colours, shape) is lost at 128x96 for a far
animal, so the network also looks closer, as camera-trap pipelines detect then
classify: the square around the burst's main moving blob (inference.locate), cut from
a finer decode of the same JPEGs at 64x64 (inference.crop_frames; on the real frames
1/2 to 1/8 scale), standardised and stacked with its own motion as the frames are, is
read by a second trunk of the same shape (~25 M multiply-adds), and the head reads
both trunks' pooled features."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from common import io
from competitions.serengeti import inference
from competitions.serengeti.data import CLASSES, EMPTY, FILE, ID, IMAGE_SIZE, STEM, WEIGHTS  # noqa: F401  (WEIGHTS: tests save models under it)

log = logging.getLogger("compete")

CLIP = inference.CLIP
FRAMES = inference.FRAMES
CHANNELS = 3 * FRAMES + 3   # every frame's colours and the burst's motion


def _trunk(channels: int, width: int, stem: int) -> nn.Sequential:
    """A stride-`stem` first layer and four conv blocks (plain conv/batch-norm/relu/pool)."""
    def block(a, b, kernel=3, stride=1):
        return [nn.Conv2d(a, b, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0, bias=False),
                nn.BatchNorm2d(b), nn.ReLU(inplace=True)]

    widths = [width, width, width * 2, width * 4, width * 5]
    layers = block(channels, widths[0], kernel=stem, stride=stem)
    for index, (a, b) in enumerate(zip(widths, widths[1:])):
        layers += block(a, b) + ([nn.MaxPool2d(2)] if index < len(widths) - 2 else [])
    return nn.Sequential(*layers)


class SerengetiNet(nn.Module):
    """Two trunks, one on the burst's frames and one on its crops (the square around what
    moved, at a finer scale: inference.read_burst), and a head on both trunks' mean- and
    max-pooled features; plain conv/batch-norm/relu/pool/linear, exported at ONNX opset 11.
    The frames say whether anything is there and where; the crops what it is: a far
    animal is a few pixels in the frames, and its coat pattern and shape (what tells
    species apart) are lost there."""

    def __init__(self, classes: int = len(CLASSES), width: int = 32, dropout: float = 0.2, channels: int = CHANNELS,
                 stem: int = STEM, exclusive: bool = True):
        super().__init__()
        self.stem, self.exclusive = stem, exclusive
        self.features = _trunk(channels, width, stem)
        self.crop_features = _trunk(channels, width, stem)
        self.mean, self.max = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width * 5, classes))

    def start_at(self, prior: np.ndarray) -> "SerengetiNet":
        """Set the output bias to the logit of the class prior: training starts at the
        prior baseline instead of 0.5 everywhere, which log loss punishes hard."""
        prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-4, 1 - 1e-4)
        bias = np.log(prior / (1 - prior))
        if self.exclusive:   # the species' scores are a softmax: their log shares of the animals
            species = np.delete(prior, EMPTY)
            bias = np.insert(np.log(species / species.sum()), EMPTY, bias[EMPTY])
        with torch.no_grad():
            self.head[-1].bias.copy_(torch.from_numpy(bias).float())
        return self

    def forward(self, frames, crops=None):
        if crops is None:   # a batch from the loaders: [frames, crops]
            frames, crops = frames
        pooled = []
        for trunk, x in ((self.features, frames), (self.crop_features, crops)):
            features = trunk(x)
            pooled += [self.mean(features), self.max(features)]
        scores = self.head(torch.cat(pooled, dim=1))
        return exclusive_logits(scores) if self.exclusive else scores


def exclusive_logits(scores: torch.Tensor) -> torch.Tensor:
    """The head's scores -> one logit per label whose sigmoid is its probability, with
    the species exclusive: P(empty) = sigmoid(its score), P(species k) = (1 - P(empty))
    x softmax_k(the species' scores). A burst holds one species almost always (two in 6%
    of the synthetic animal bursts, rarely in the real ones), so the 53 probabilities
    share one unit of belief instead of 53 independent ones: what one species gains, the
    others lose, as the binary log loss of each column wants when only one is true. The
    outputs stay sigmoid logits, so the loss (binary cross-entropy, the metric), the
    bundle and both predictors read them as before."""
    empty = scores[:, EMPTY:EMPTY + 1]
    species = torch.cat([scores[:, :EMPTY], scores[:, EMPTY + 1:]], dim=1)
    log_p = nn.functional.logsigmoid(-empty) + torch.log_softmax(species, dim=1)
    # log(1 - p), p kept below 1 - 1e-6 (float32; the submission clips at 1e-4 anyway)
    log_q = torch.log(1 - torch.exp(log_p).clamp(max=1 - 1e-6))
    logits = log_p - log_q
    return torch.cat([logits[:, :EMPTY], empty, logits[:, EMPTY:]], dim=1)


def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per class (labels are stored as uint8 0/1)."""
    return nn.functional.binary_cross_entropy_with_logits(logits, target.float())


SHIFT_SHARE = 16   # the training shift reaches width / SHIFT_SHARE pixels each way


def parts(sample) -> tuple[np.ndarray, np.ndarray]:
    """A shard's sample (prepare.burst_sample: one record of the frame stack and the crop
    stack) -> (frames, crops), uint8 (FRAMES, H, W, 3) and (FRAMES, CROP, CROP, 3)."""
    record = sample.reshape(-1)[0]
    return record["frames"], record["crops"]


def _shifted(stack: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    _, height, width, _ = stack.shape
    shift = max(1, width // SHIFT_SHARE)
    padded = np.pad(stack, ((0, 0), (shift, shift), (shift, shift), (0, 0)), mode="edge")
    top, left = rng.integers(0, 2 * shift + 1, size=2)
    return padded[:, top:top + height, left:left + width]


def augment(sample, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A shard's sample -> the network's two inputs (frames, crops), with a random
    mirror, shift and recolouring (`recolour`) applied to every frame alike, and to the
    frames and the crops alike (training). The shift (up to 1/16 of the width each way,
    edges repeated) is against overfitting: without it the validation loss stopped at
    0.0119 from epoch 15 of 22 while the training loss kept falling; with it, full-scale
    synthetic test 0.01107 -> 0.01062. On the crops it moves the square as the locator's
    error would."""
    frames, crops = parts(sample)
    if rng.random() < 0.5:
        frames, crops = frames[:, :, ::-1], crops[:, :, ::-1]
    frames, crops = _shifted(frames, rng), _shifted(crops, rng)
    colour = colour_draw(rng)
    return tuple(torch.from_numpy(inference.sequence_input(recolour(stack, colour))) for stack in (frames, crops))


def colour_draw(rng: np.random.Generator) -> tuple:
    """One recolouring (recolour): contrast, saturation and a gain per channel."""
    return rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3), (rng.uniform(0.75, 1.25) * rng.uniform(0.9, 1.1, 3)).astype(np.float32)


def recolour(stack: np.ndarray, colour: tuple) -> np.ndarray:
    """The burst as another season's light and another camera would see it, every frame
    alike (so the motion stays the animals'): contrast and saturation (torchvision), the
    exposure and a gain per channel (white balance, the light's colour): `colour`, a
    colour_draw. The hidden test is a later season from cameras training never saw; the
    ranges are the spread of real camera traps' exposure and colour, not fitted to a
    score. The network's input is standardised per burst (inference.sequence_input),
    which divides most of this out again (gain, exposure, contrast): what stays is the
    saturation and the clipping of bright pixels, as a camera of another gain would clip them."""
    from torchvision.transforms.v2 import functional as tv

    contrast, saturation, gains = colour
    frames = torch.from_numpy(np.ascontiguousarray(stack)).permute(0, 3, 1, 2)
    frames = tv.adjust_saturation(tv.adjust_contrast(frames, contrast), saturation)
    return np.clip(frames.permute(0, 2, 3, 1).numpy() * gains, 0, 255).astype(np.uint8)


def plain(sample, rng=None) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.from_numpy(inference.sequence_input(stack)) for stack in parts(sample))


# What the saved network reads (inference.sequence_input): each burst standardised by its
# own statistics, its frames and its crops, a single frame stacked with its camera's
# background. Models saved before read raw [0, 1] frames ("" ), the standardised frames
# alone ("burst-standardised"), or a single frame repeated ("burst-standardised, frames and crops").
INPUT = "burst-standardised, frames and crops, single frames against the background"


class SerengetiModel:
    """The trained network with what inference needs beside it: the input size, the
    class prior (the answer for a sequence whose every frame is unreadable)."""

    def __init__(self, net: SerengetiNet, prior: np.ndarray, image_size=IMAGE_SIZE, width: int = 32):
        self.net, self.prior, self.image_size, self.width = net, np.asarray(prior, dtype=np.float64), tuple(image_size), width

    def export(self, folder: Path) -> list[Path]:
        """The network as ONNX for the code submission's runtime, and what inference
        needs beside it (competitions/serengeti/inference.py reads both)."""
        from common.packaging import export_onnx

        folder = Path(folder)
        example = (torch.zeros(1, CHANNELS, self.image_size[1], self.image_size[0]),
                   torch.zeros(1, CHANNELS, inference.CROP, inference.CROP))
        meta = {"classes": list(CLASSES), "prior": self.prior.tolist(), "image_size": list(self.image_size),
                "frames": FRAMES, "crop": inference.CROP}
        return [export_onnx(self.net, example, folder / inference.MODEL, profile="hakuna-madata",
                            input_names=("frames", "crops")),
                io.write_text(folder / inference.META, json.dumps(meta, indent=1) + "\n")]

    def save(self, path: Path) -> Path:
        payload = {"state_dict": self.net.state_dict(), "prior": self.prior.tolist(), "image_size": list(self.image_size),
                   "width": self.width, "stem": self.net.stem, "classes": list(CLASSES), "input": INPUT,
                   "head": "exclusive" if self.net.exclusive else "sigmoid"}
        with io.atomic_path(path) as temporary:
            torch.save(payload, temporary)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "SerengetiModel":
        path = Path(path)
        if not path.is_file():
            raise io.InputError(f"{path}: no trained Serengeti model here")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch's own words for a cut or overwritten file
            raise io.InputError(f"{path}: the trained model cannot be read ({' '.join(str(error).split())[:100]}); "
                                f"the file is damaged: fit again") from None
        if list(payload["classes"]) != list(CLASSES):
            raise io.InputError(f"{path}: the model's classes differ from the competition's 54")
        if payload.get("input") != INPUT:   # same shapes, other numbers in: it would predict nonsense, silently
            raise io.InputError(f"{path}: a model trained before the network read each burst's crops beside its "
                                f"frames, standardised, and a single frame against its camera's background "
                                f"(inference.read_sequence); train it again")
        net = SerengetiNet(width=payload["width"], stem=payload.get("stem", 4),   # models saved before the stem was kept had 4
                           exclusive=payload.get("head") == "exclusive")        # and before the exclusive species, sigmoids
        try:
            net.load_state_dict(payload["state_dict"])
        except RuntimeError:
            raise io.InputError(f"{path}: a network of another shape (an older serengeti model?); train it again") from None
        return cls(net, np.array(payload["prior"]), payload["image_size"], payload["width"])


class SequenceFiles(torch.utils.data.Dataset):
    """Map-style: decode each sequence's JPEGs on demand (inference.read_sequence, as
    the code submission does). A sequence with no readable frame gives a blank input
    and readable=False, so bad files never stop a prediction run."""

    def __init__(self, root: Path, groups, size=IMAGE_SIZE, backgrounds: dict | None = None):
        self.root, self.groups, self.size = Path(root), list(groups), tuple(size)
        self.backgrounds = backgrounds or {}   # inference.site_backgrounds of these sequences

    def __len__(self):
        return len(self.groups)

    def __getitem__(self, index):
        seq_id, files = self.groups[index]
        arrays, bad = inference.read_sequence(self.root, files, self.size, self.backgrounds.get(inference.site_key(seq_id)))
        if arrays is None:
            return ((torch.zeros(CHANNELS, self.size[1], self.size[0]), torch.zeros(CHANNELS, inference.CROP, inference.CROP)),
                    False, "\n".join(bad))
        return tuple(torch.from_numpy(array) for array in arrays), True, "\n".join(bad)


def sequence_probabilities(model: SerengetiModel, batches, quiet: bool = True, total: int | None = None) -> np.ndarray:
    """Sigmoid outputs for every sequence of an iterable of (inputs, ...) batches,
    averaged over each input and its mirror, as the code submission does
    (inference.Model.probabilities)."""
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = model.net.to(device).eval()
    outputs = []
    with torch.no_grad():
        for batch in tqdm(batches, total=total, desc="predicting", disable=quiet, unit="batch"):
            frames, crops = (part.to(device) for part in batch[0])
            views = [torch.sigmoid(net(*view).float())
                     for view in ((frames, crops), (torch.flip(frames, dims=[3]), torch.flip(crops, dims=[3])))]
            outputs.append(torch.stack(views).mean(dim=0).cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, len(CLASSES)))


def assemble(sequences, predicted: dict, prior: np.ndarray) -> pd.DataFrame:
    """seq_id -> probabilities into one row per sequence of `sequences`, by the rule the
    code submission applies (competitions/serengeti/inference.py `assemble`)."""
    sequences = list(sequences)
    result = pd.DataFrame(inference.assemble(sequences, predicted, prior), columns=list(CLASSES))
    result.insert(0, ID, np.asarray(sequences, dtype=object))
    return result


def predict_folder(model: SerengetiModel, metadata: pd.DataFrame, root: Path, quiet: bool = True,
                   workers: int | None = None) -> pd.DataFrame:
    """Predict every sequence of `metadata` from the JPEGs under `root`, one row a
    sequence; the files that could not be read are logged."""
    groups = inference.group_sequences(metadata[ID], metadata[FILE])
    dataset = SequenceFiles(root, groups, model.image_size, inference.site_backgrounds(root, groups, model.image_size))
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    loader = torch.utils.data.DataLoader(dataset, batch_size=inference.BATCH, num_workers=workers)
    readable, bad = [], []

    def batches():
        for inputs, ok, unreadable in loader:
            readable.append(ok.numpy())
            bad.extend(name for names in unreadable for name in names.split("\n") if name)
            yield (inputs,)

    probabilities = sequence_probabilities(model, batches(), quiet=quiet, total=len(loader))
    readable = np.concatenate(readable) if readable else np.zeros(0, bool)
    if bad:
        log.warning("%d image(s) unreadable or missing, predicted from the other frames of their sequence "
                    "or the prior: %s%s", len(bad), ", ".join(bad[:5]), " ..." if len(bad) > 5 else "")
    predicted = {seq_id: row for (seq_id, _), row, ok in zip(groups, probabilities, readable) if ok}
    return assemble(pd.unique(metadata[ID]), predicted, model.prior)
