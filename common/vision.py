"""An image classifier for any competition: files and labels in, probabilities out.

    ImageModel(task, classes, settings)
        .fit(files, y, run_dir, quiet, valid=None) -> self
        .predict(files) -> np.ndarray
    tasks as competitions/tabular/model.py has them: binary (y 0/1; predict gives the
    probability of the second class, shape (n,)), multiclass (y class indices; (n, k)),
    multilabel (y (n, k) 0/1; (n, k)). `settings` is the run's options (seed, fast and
    the knobs below, read by name); common/sound.py's AudioModel answers the same calls,
    so a competition's orchestration is one code path for both media.

How it trains, on the shared parts: every image decoded once at a size chosen from the
data (`choose_size`) into webdataset shards in the cache (common/loaders.py), streamed
with a shuffle buffer and augmented on the fly (mirror, a small shifted crop, colour
jitter), through the shared trainer (common/trainers.py: one-cycle, checkpoints every
`checkpoint_every` batches and resume, early stopping on the validation loss, the time
budget fitting the epochs, MLflow's per-epoch losses). The network is common/backbones.py's:
the small from-scratch CNN, or a timm architecture, pretrained weights fine-tuned at a
lower rate for the body. Predictions average each image and its mirror.

Beyond one process, as serengeti: with `--scheduler` the shards are packed on the Dask
cluster (one shard a task, `pack`); under torchrun rank 0 packs while the others wait
(loaders.cached_shards), each rank streams its own share of the shards, the trainer's DDP
averages the gradients, and rank 0 alone predicts the held-out files and writes the run
(competitions/tabular/media.py). A killed run started again in its run directory resumes
from its last checkpoint; `decisions` says from where (resumed_from) and how many steps
the rerun trained itself.

An image that cannot be decoded is left out of training (counted, and fatal when it is
most of them) and gets the training prior at prediction (counted in `unreadable`), so a
submission stays complete.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import backbones, images, io

log = logging.getLogger("compete")

WEIGHTS = "image_model.pt"
SIZES = (32, 48, 64, 96, 128, 160, 224)
LARGEST_SCRATCH = 128     # from scratch on a CPU, more pixels cost steps the budget would rather spend
PRETRAINED_SIZE = 224     # what timm's ImageNet backbones were trained at
SHARD_IMAGES = 1000
PARALLEL_DECODE = 256     # fewer images than this decode in this process (a pool costs more to start)
JITTER = 0.2              # brightness, contrast and saturation move by up to this share
SHIFT_SHARE = 8           # the training crop moves up to size / SHIFT_SHARE pixels each way


def setting(settings, name: str, default=None):
    """One knob of the run's options; a missing or None knob is `default`."""
    value = getattr(settings, name, None)
    return default if value is None else value


def choose_size(files: list[Path], pretrained: bool, sample: int = 200, seed: int = 0) -> int:
    """The side images are resized to, from the data: the median shorter side of up to
    `sample` files (headers only), rounded down to one of SIZES and capped (a 32-pixel
    cactus stays 32; a 500-pixel dog photo becomes 128 from scratch, 224 pretrained)."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(files), size=min(sample, len(files)), replace=False) if files else []
    sides = [min(size) for size in (images.image_size(files[i]) for i in chosen) if size]
    median = float(np.median(sides)) if sides else 64.0
    fitting = [size for size in SIZES if size <= median] or [SIZES[0]]
    return min(fitting[-1], PRETRAINED_SIZE if pretrained else LARGEST_SCRATCH)


def _decode(job):
    path, size = job
    try:
        return images.read_image(path, size), None
    except images.UnreadableImage as error:
        return None, str(error)


def decode_all(files: list[Path], size: int):
    """(array or None, reason or None) per file, in order, decoded here (training's
    decoding runs per shard in `_pack_images`, on a pool or a Dask worker)."""
    return map(_decode, [(str(path), size) for path in files])


def fingerprint(files: list[Path], labels: np.ndarray, size: int, part: str) -> str:
    """The shard cache's key: each file's path, size and modification time (hashing every
    image's bytes would cost a second read of the set), the labels and the size."""
    digest = hashlib.sha256(f"{size}|{part}|{labels.dtype}|{labels.shape}".encode())
    for path in files:
        status = os.stat(path)
        digest.update(f"{Path(path).resolve()}|{status.st_size}|{status.st_mtime_ns}\n".encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:20]


def _pack_images(group, size: int, pool=None):
    """One shard: its images decoded at `size` (on `pool` when given) and packed; the
    unreadable ones as [file, reason]. A Dask task under --scheduler, returning the
    tar's bytes (the worker reads the images at the same paths; it writes nothing)."""
    from common import loaders

    number, files, labels = group
    jobs = [(path, size) for path in files]
    decoded = pool.map(_decode, jobs, chunksize=32) if pool is not None else map(_decode, jobs)
    samples, unreadable = [], []
    for path, label, (array, reason) in zip(files, labels, decoded):
        if array is None:
            unreadable.append([path, reason])
        else:
            samples.append((path, array, label))
    return (*loaders.pack_shard(number, samples), unreadable)


def pack(files: list[Path], labels: np.ndarray, size: int, part: str, workers: int, quiet: bool):
    """Every readable image at `size` into cached shards (the key: `fingerprint`) of
    SHARD_IMAGES each, packed on the Dask cluster under --scheduler and here otherwise
    (common.loaders.pack_groups: the same bytes either way); the unreadable ones are
    listed in the set's metadata as [file, reason]. Memory holds a shard or two of
    decoded images, whatever the number of files."""
    from common import loaders, parallel

    names = [str(path) for path in files]
    groups = [(number, names[chosen], labels[chosen]) for number, chosen in enumerate(parallel.split(len(names), SHARD_IMAGES))]

    def build(directory: Path):
        try:
            return loaders.pack_groups(directory, groups, _pack_images, metadata={"image_size": size},
                                       workers=workers if len(names) >= PARALLEL_DECODE else 1, progress=not quiet,
                                       size=size)
        except loaders.NothingReadable as nothing:
            first, reason = nothing.unreadable[0] if nothing.unreadable else (directory, "no files")
            raise io.InputError(f"{first}: cannot be read as an image ({reason}); none of the {len(files)} "
                                f"{part} images could be") from None

    return loaders.cached_shards("images", fingerprint(files, labels, size, part), build=build)


def augment(array: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    """Training's view of an image (uint8 (H, W, 3)): mirrored half the time, a crop
    shifted up to 1/8 of the side each way (edges repeated), brightness, contrast and
    saturation jittered by up to 20%. Mild on purpose: a vertical flip or a large crop
    can change what a picture shows (a digit, a cell count)."""
    if rng.random() < 0.5:
        array = array[:, ::-1]
    height, width, _ = array.shape
    shift = max(1, width // SHIFT_SHARE)
    padded = np.pad(array, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
    top, left = rng.integers(0, 2 * shift + 1, size=2)
    pixels = padded[top:top + height, left:left + width].astype(np.float32)
    brightness, contrast, saturation = rng.uniform(1 - JITTER, 1 + JITTER, size=3)
    grey = pixels.mean(axis=2, keepdims=True)
    pixels = grey + (pixels - grey) * saturation
    pixels = (pixels - pixels.mean()) * contrast + pixels.mean()
    pixels = np.clip(pixels * brightness, 0, 255).astype(np.uint8)
    return torch.from_numpy(images.network_input(pixels))


def plain(array: np.ndarray, rng=None) -> torch.Tensor:
    return torch.from_numpy(images.network_input(array))


def loss_for(task: str):
    if task == "multiclass":
        return lambda logits, target: nn.functional.cross_entropy(logits, target.long())
    if task == "binary":
        return lambda logits, target: nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target.float())
    return lambda logits, target: nn.functional.binary_cross_entropy_with_logits(logits, target.float())


class ImageModel:
    """See the module docstring."""

    def __init__(self, task: str, classes: list, settings=None):
        self.task, self.classes, self.settings = task, list(classes), settings
        self.outputs = 1 if task == "binary" else len(self.classes)
        self.net: nn.Module | None = None
        self.size = 0
        self.backbone = backbones.SMALL
        self.width = 32
        self.prior = None
        self.unreadable: list = []     # [file, reason] of the last fit's and predict's unreadable images
        self.decisions: dict = {}      # what fit decided: size, epochs, timings (for metrics.json)

    # -- training
    def _prior(self, y: np.ndarray) -> np.ndarray:
        if self.task == "multiclass":
            return np.bincount(y.astype(int), minlength=self.outputs) / len(y)
        return np.asarray(y, dtype=np.float64).mean(axis=0)

    def fit(self, files: list[Path], y: np.ndarray, run_dir: Path, quiet: bool = True, valid=None) -> ImageModel:
        from common import loaders, trainers

        started = time.perf_counter()
        run_dir = Path(run_dir)
        settings, y = self.settings, np.asarray(y)
        seed = int(setting(settings, "seed", 0))
        fast = bool(setting(settings, "fast", False))
        workers = setting(settings, "workers", None)
        workers = (min(2, os.cpu_count() or 1) if len(files) >= 2000 else 0) if workers is None else int(workers)
        decode_workers = max(1, min(4, os.cpu_count() or 1))
        self.backbone, self.width = str(setting(settings, "backbone", backbones.SMALL)), int(setting(settings, "width", 32))
        weights = setting(settings, "weights", None)
        torch.manual_seed(seed)
        pretrained = bool(weights) or (self.backbone != backbones.SMALL and
                                       backbones.cached_weights(*backbones.architecture(self.backbone)) is not None)
        self.size = int(setting(settings, "image_size", 0)) or choose_size(files, pretrained, seed=seed)
        self.prior = self._prior(y)
        valid_files, valid_y = valid if valid is not None else (files, y)
        sets, unreadable = {}, []
        for part, part_files, part_y in (("train", files, y), ("valid", valid_files, np.asarray(valid_y))):
            labels = part_y.astype(np.uint8) if self.task != "multiclass" else part_y.astype(np.int64)
            sets[part] = pack(list(part_files), labels, self.size, part, decode_workers, quiet)
            unreadable += sets[part].metadata.get("unreadable", [])
        self.unreadable = unreadable
        total = len(files) + (len(valid_files) if valid is not None else 0)
        if len(unreadable) > total / 2:
            raise io.InputError(f"{unreadable[0][0]}: cannot be read as an image ({unreadable[0][1]}); {len(unreadable)} "
                                f"of the {total} training images cannot: most of the set is unusable")
        if unreadable:
            log.warning("%d image(s) cannot be read and are left out of training: %s (%s)%s", len(unreadable),
                        unreadable[0][0], unreadable[0][1], " ..." if len(unreadable) > 1 else "")
        prepared = time.perf_counter()

        torch.manual_seed(seed)
        backbone = backbones.make_backbone(self.backbone, self.outputs, weights, width=self.width, image_size=self.size)
        backbones.start_at(backbone, self.task, self.prior)
        log.info("image model: %s at %dx%d, %d training and %d validation images, %s", self.task, self.size, self.size,
                 sets["train"].count, sets["valid"].count, backbones.describe(backbone))
        batch_size = int(setting(settings, "batch_size", 64))
        balance = float(setting(settings, "balance", 0.0))
        buffer = min(2000, max(64, sets["train"].count))

        def train_loader():
            return loaders.StreamLoader(loaders.ShardStream(sets["train"], buffer_size=buffer, seed=seed, balance=balance,
                                                            transform=augment), batch_size=batch_size, num_workers=workers)

        valid_loader = loaders.StreamLoader(loaders.ShardStream(sets["valid"], shuffle=False, transform=plain),
                                            batch_size=max(batch_size, 64), num_workers=workers)
        most = int(setting(settings, "epochs", 2 if fast else 30))
        minutes = setting(settings, "minutes", None)
        minutes = minutes if minutes is not None else (None if fast else 10.0)
        rate = float(setting(settings, "lr", 1e-3 if backbone.pretrained else 1e-2))
        # a pretrained body fine-tunes at a tenth of the new head's rate; one-cycle warms both up
        lr = slice(rate * backbones.BODY_RATE, rate) if backbone.pretrained else rate
        loss = loss_for(self.task)
        threads_before = torch.get_num_threads()
        threads = int(setting(settings, "threads", max(1, (os.cpu_count() or 1) - workers)))
        torch.set_num_threads(threads)
        try:
            budget = {"epochs": most, "seconds_per_batch": None, "seconds": None} if minutes is None else \
                trainers.fit_budget(backbone.net, train_loader, loss, run_dir, minutes * 60, most,
                                    valid_loader.batch_size * len(valid_loader) / batch_size, name="image model")
            learn = trainers.train(backbone.net, train_loader(), valid_loader, loss, run_dir, epochs=budget["epochs"],
                                   lr=lr, checkpoint_every=int(setting(settings, "checkpoint_every", 200)),
                                   patience=int(setting(settings, "patience", 6)), seed=seed, quiet=quiet,
                                   wd=float(setting(settings, "weight_decay", 1e-4)),
                                   splitter=backbone.groups if backbone.pretrained else None, budget=budget)
        finally:
            torch.set_num_threads(threads_before)
        self.rates = [float(hypers["lr"]) for hypers in learn.opt.hypers] if learn.opt is not None else [rate]
        self.net = learn.model.cpu().eval()
        self.pretrained, self.source = backbone.pretrained, backbone.source
        self.decisions = dict(image_size=self.size, backbone=backbone.name, pretrained=backbone.pretrained,
                              epochs=learn.epochs_done, epochs_asked=(learn.budget or budget)["epochs"],
                              epochs_first_plan=budget["epochs"], epochs_most=most,
                              minutes_budget=minutes, seconds_per_batch=budget["seconds_per_batch"],
                              train_images=sets["train"].count, valid_images=sets["valid"].count,
                              unreadable_images=[name for name, _ in unreadable], threads=threads,
                              # a rerun of a killed run resumes from its last checkpoint: where, and what it trained itself
                              resumed_from=learn.resumed, train_steps=int(learn.train_iter),
                              train_steps_this_run=int(learn.train_iter - (learn.resumed or {}).get("train_iter", 0)),
                              prepare_seconds=round(prepared - started, 2),
                              train_seconds=round(time.perf_counter() - prepared, 2))
        return self

    # -- prediction
    def views(self, batch: np.ndarray) -> list[np.ndarray]:
        """The network's logits for a batch of inputs and for its mirror."""
        with torch.no_grad():
            inputs = torch.from_numpy(batch)
            return [self.net(view).float().numpy() for view in (inputs, torch.flip(inputs, dims=[3]))]

    def predict(self, files: list[Path], batch: int = 64) -> np.ndarray:
        """Probabilities for every file, each averaged over the image and its mirror;
        an unreadable file gets the training prior (and is listed in `unreadable`)."""
        self.net.eval()
        rows, self.unreadable = [], []
        for start in range(0, len(files), batch):
            chunk = files[start:start + batch]
            arrays, readable = [], []
            for path, (array, reason) in zip(chunk, decode_all(chunk, self.size)):
                if array is None:
                    self.unreadable.append([str(path), reason])
                else:
                    arrays.append(images.network_input(array))
                readable.append(array is not None)
            out = np.tile(self._prior_row(), (len(chunk), 1))
            if arrays:
                views = self.views(np.stack(arrays))
                out[np.asarray(readable)] = np.mean([images.probabilities(self.task, v).reshape(len(arrays), -1) for v in views],
                                                    axis=0)
            rows.append(out)
        result = np.concatenate(rows) if rows else np.zeros((0, self.outputs))
        if self.unreadable:
            log.warning("%d image(s) cannot be read and get the training prior: %s (%s)%s", len(self.unreadable),
                        self.unreadable[0][0], self.unreadable[0][1], " ..." if len(self.unreadable) > 1 else "")
        return result[:, 0] if self.task == "binary" else result

    def _prior_row(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.prior, dtype=np.float64))

    # -- persistence and export
    def meta(self) -> dict:
        return {"task": self.task, "classes": [str(c) for c in self.classes], "image_size": self.size,
                "prior": self._prior_row().tolist(), "backbone": self.backbone, "width": self.width,
                "mean": images.MEAN.tolist(), "std": images.STD.tolist()}

    def save(self, path: Path) -> Path:
        payload = {**self.meta(), "classes": list(self.classes), "outputs": self.outputs,
                   "state_dict": self.net.state_dict(), "decisions": self.decisions}
        with io.atomic_path(path) as temporary:
            torch.save(payload, temporary)
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> ImageModel:
        path = Path(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch's own words for a cut or overwritten file
            raise io.InputError(f"{path}: the trained image model cannot be read ({' '.join(str(error).split())[:100]}); "
                                f"fit again") from None
        model = cls(payload["task"], payload["classes"])
        model.size, model.backbone, model.width = payload["image_size"], payload["backbone"], payload["width"]
        model.prior, model.decisions = np.asarray(payload["prior"]), payload.get("decisions", {})
        net = backbones.make_backbone(model.backbone, payload["outputs"], None, width=model.width,
                                      image_size=model.size, cached=False).net   # the trained weights follow: no cache read
        net.load_state_dict(payload["state_dict"])
        model.net = net.eval()
        return model

    def export(self, folder: Path, model_file: str, script_file: str, meta_file: str, profile: str) -> list[Path]:
        """The network as ONNX (run by onnxruntime where the runtime has it) and as
        TorchScript (Kaggle's image has torch but no onnxruntime), and what inference
        needs beside them."""
        from common.packaging import export_onnx

        folder = Path(folder)
        example = torch.zeros(1, 3, self.size, self.size)
        written = [export_onnx(self.net, example, folder / model_file, profile=profile)]
        self.net.eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)   # TorchScript is deprecated, and still what torch alone loads
            traced = torch.jit.trace(self.net, example)
            with io.atomic_path(folder / script_file) as temporary:
                torch.jit.save(traced, str(temporary))
        written.append(folder / script_file)
        written.append(io.write_text(folder / meta_file, json.dumps(self.meta(), indent=1) + "\n"))
        return written
