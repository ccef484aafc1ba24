"""Loader throughput: samples/s streamed from tar shards (common.loaders) against the
named baseline, a map-style torch Dataset that opens, decodes and resizes the original
JPEGs (shuffled DataLoader), measured in the same run on the same images, same batch
size and worker count.

A sample is a sequence (its 1-3 frames and their motion, as serengeti trains on).
The small synthetic JPEGs are 256x192; the real camera frames are 2048x1536 (~1 MB),
where decoding costs ~60x more. --upscale 4 re-encodes every image at 1024x768 to show
the ratio closer to the real data.

Usage: python bench/loaders_throughput.py [--data DIR] [--upscale N] [--epochs N] [--workers N]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402


def upscale(data: Path, factor: int, out: Path) -> Path:
    from PIL import Image
    metadata = pd.read_csv(data / "train_metadata.csv")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train_metadata.csv", "train_labels.csv"):
        (out / name).write_bytes((data / name).read_bytes())
    for file in metadata["file_name"]:
        target = out / file
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with Image.open(data / file) as image:
                image.convert("RGB").resize((image.width * factor, image.height * factor), Image.BICUBIC).save(target, quality=90)
        except OSError:
            pass  # corrupt or missing in the source: stays unreadable here too
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path)
    parser.add_argument("--upscale", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-loaders-") as scratch:
        measure(arguments, Path(scratch))


def measure(arguments, scratch: Path):
    from common import loaders
    from competitions.serengeti import data as serengeti_data
    from competitions.serengeti import inference
    from competitions.serengeti import model as serengeti_model
    from competitions.serengeti.prepare import prepare_shards
    from competitions.serengeti.synth import synth

    data = arguments.data
    if data is None:
        data = scratch / "data"
        synth(data, seed=0, scale="small")
    if arguments.upscale > 1:
        data = upscale(data, arguments.upscale, scratch / "upscaled")
    loaded = serengeti_data.load(data)
    frames = loaded.train.merge(loaded.labels, on=serengeti_data.ID)
    started = time.perf_counter()
    shard_set = prepare_shards(frames, loaded.root, f"bench-{arguments.upscale}", quiet=True)
    prepare_seconds = time.perf_counter() - started

    groups = inference.group_sequences(frames[serengeti_data.ID], frames[serengeti_data.FILE])
    first = frames.drop_duplicates(serengeti_data.ID).set_index(serengeti_data.ID)

    class Jpegs(torch.utils.data.Dataset):
        def __init__(self):
            chosen = [seq_id for seq_id, _ in groups]
            self.labels = torch.from_numpy(first.loc[chosen, list(serengeti_data.CLASSES)].to_numpy(dtype="uint8").copy())

        def __len__(self):
            return len(groups)

        def __getitem__(self, index):
            arrays, _ = inference.read_sequence(loaded.root, groups[index][1], serengeti_data.IMAGE_SIZE)
            inputs = tuple(torch.from_numpy(array) for array in arrays) if arrays is not None else (
                torch.zeros(serengeti_model.CHANNELS, serengeti_data.IMAGE_SIZE[1], serengeti_data.IMAGE_SIZE[0]),
                torch.zeros(serengeti_model.CHANNELS, inference.CROP, inference.CROP))
            return inputs, self.labels[index]

    def rate(loader) -> float:
        count, started = 0, time.perf_counter()
        for epoch in range(arguments.epochs):
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(epoch)
            for images, _ in loader:
                count += len(images)
        return count / (time.perf_counter() - started)

    baseline = rate(torch.utils.data.DataLoader(Jpegs(), batch_size=64, shuffle=True, num_workers=arguments.workers))
    stream = rate(loaders.StreamLoader(loaders.ShardStream(shard_set, buffer_size=1000, transform=serengeti_model.plain),
                                       batch_size=64, num_workers=arguments.workers))
    print(f"sequences: {len(groups)} of {len(frames)} images ({'x'.join(map(str, (256 * arguments.upscale, 192 * arguments.upscale)))} JPEGs), "
          f"{arguments.epochs} epochs, batch 64, {arguments.workers} workers; one-off prepare {prepare_seconds:.1f} s")
    print(f"baseline map-style JPEG decode: {baseline:8.0f} samples/s")
    print(f"shard stream:                   {stream:8.0f} samples/s")
    print(f"ratio shards / JPEG decode:     {stream / baseline:8.2f}x")


if __name__ == "__main__":
    main()
