"""The Serengeti image model: a small multi-label CNN (one sigmoid per class), frame
-> sequence aggregation, and its export for the code submission (ONNX, run by
competitions/serengeti/inference.py in the hidden-test runtime)."""
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
from competitions.serengeti.data import CLASSES, EMPTY, FILE, ID, IMAGE_SIZE, WEIGHTS, read_image

log = logging.getLogger("compete")

CLIP = inference.CLIP


class SerengetiNet(nn.Module):
    """Four conv blocks and a linear head: ~25 M multiply-adds a frame, small enough to
    train from scratch on a CPU."""

    def __init__(self, classes: int = len(CLASSES), width: int = 24, dropout: float = 0.2):
        super().__init__()
        channels = [3, width, width * 2, width * 4, width * 5]

        def block(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True), nn.MaxPool2d(2))

        self.features = nn.Sequential(*[block(a, b) for a, b in zip(channels, channels[1:])])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels[-1], classes))

    def start_at(self, prior: np.ndarray) -> "SerengetiNet":
        """Set the output bias to the logit of the class prior: training starts at the
        prior baseline instead of 0.5 everywhere, which log loss punishes hard."""
        prior = np.clip(np.asarray(prior, dtype=np.float64), 1e-4, 1 - 1e-4)
        with torch.no_grad():
            self.head[-1].bias.copy_(torch.from_numpy(np.log(prior / (1 - prior))).float())
        return self

    def forward(self, x):
        return self.head(self.features(x))


def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per class (labels are stored as uint8 0/1)."""
    return nn.functional.binary_cross_entropy_with_logits(logits, target.float())


def to_tensor(array: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1]; with `rng`, a random mirror and
    brightness change (training augmentation)."""
    if rng is not None:
        if rng.random() < 0.5:
            array = array[:, ::-1]
        array = np.clip(array.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32).transpose(2, 0, 1) / 255.0)


def augment(array: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    return to_tensor(array, rng)


def plain(array: np.ndarray, rng=None) -> torch.Tensor:
    return to_tensor(array)


class SerengetiModel:
    """The trained network with what inference needs beside it: the input size, the
    class prior (the answer for a sequence whose every frame is unreadable)."""

    def __init__(self, net: SerengetiNet, prior: np.ndarray, image_size=IMAGE_SIZE, width: int = 24):
        self.net, self.prior, self.image_size, self.width = net, np.asarray(prior, dtype=np.float64), tuple(image_size), width

    def export(self, folder: Path) -> list[Path]:
        """The network as ONNX for the code submission's runtime, and what inference
        needs beside it (competitions/serengeti/inference.py reads both)."""
        from common.packaging import export_onnx

        folder = Path(folder)
        example = torch.zeros(1, 3, self.image_size[1], self.image_size[0])
        meta = {"classes": list(CLASSES), "prior": self.prior.tolist(), "image_size": list(self.image_size)}
        return [export_onnx(self.net, example, folder / inference.MODEL, profile="hakuna-madata"),
                io.write_text(folder / inference.META, json.dumps(meta, indent=1) + "\n")]

    def save(self, path: Path) -> Path:
        payload = {"state_dict": self.net.state_dict(), "prior": self.prior.tolist(), "image_size": list(self.image_size),
                   "width": self.width, "classes": list(CLASSES)}
        with io.atomic_path(path) as temporary:
            torch.save(payload, temporary)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> "SerengetiModel":
        path = Path(path)
        if not path.is_file():
            raise io.InputError(f"{path}: no trained Serengeti model here")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if list(payload["classes"]) != list(CLASSES):
            raise io.InputError(f"{path}: the model's classes differ from the competition's 54")
        net = SerengetiNet(width=payload["width"])
        net.load_state_dict(payload["state_dict"])
        return cls(net, np.array(payload["prior"]), payload["image_size"], payload["width"])


class ImageFiles(torch.utils.data.Dataset):
    """Map-style: decode each listed JPEG on demand. Unreadable files give a blank
    image and readable=False, so one bad file never stops a prediction run."""

    def __init__(self, root: Path, files, size=IMAGE_SIZE):
        self.root, self.files, self.size = Path(root), list(files), tuple(size)

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        array = read_image(self.root / self.files[index], self.size)
        if array is None:
            return torch.zeros(3, self.size[1], self.size[0]), False
        return to_tensor(array), True


def frame_probabilities(model: SerengetiModel, batches, quiet: bool = True, total: int | None = None) -> np.ndarray:
    """Sigmoid outputs for every image of an iterable of (images, ...) batches."""
    from tqdm.auto import tqdm

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = model.net.to(device).eval()
    outputs = []
    with torch.no_grad():
        for batch in tqdm(batches, total=total, desc="predicting", disable=quiet, unit="batch"):
            outputs.append(torch.sigmoid(net(batch[0].to(device)).float()).cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, len(CLASSES)))


def aggregate(seq_ids, probabilities: np.ndarray, readable: np.ndarray, prior: np.ndarray, sequences) -> pd.DataFrame:
    """Frame probabilities -> one row per sequence of `sequences`, by the rule the code
    submission applies (competitions/serengeti/inference.py `aggregate`)."""
    sequences = list(sequences)
    values = inference.aggregate(list(seq_ids), probabilities, readable, prior, sequences, EMPTY)
    result = pd.DataFrame(values, columns=list(CLASSES))
    result.insert(0, ID, np.asarray(sequences, dtype=object))
    return result


def predict_folder(model: SerengetiModel, metadata: pd.DataFrame, root: Path, quiet: bool = True,
                   workers: int | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Predict every sequence of `metadata` from the JPEGs under `root`; returns the
    sequence frame and the files that could not be read."""
    dataset = ImageFiles(root, metadata[FILE], model.image_size)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, num_workers=workers)
    readable, probabilities = [], []

    def batches():
        for images, ok in loader:
            readable.append(ok.numpy())
            yield (images,)

    probabilities = frame_probabilities(model, batches(), quiet=quiet, total=len(loader))
    readable = np.concatenate(readable) if readable else np.zeros(0, bool)
    bad = metadata[FILE][~readable].tolist()
    if bad:
        log.warning("%d image(s) unreadable or missing, predicted from the other frames of their sequence "
                    "or the prior: %s%s", len(bad), ", ".join(bad[:5]), " ..." if len(bad) > 5 else "")
    sequences = pd.unique(metadata[ID])
    return aggregate(metadata[ID], probabilities, readable, model.prior, sequences), bad
