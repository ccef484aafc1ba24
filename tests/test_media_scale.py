"""The generic image path beyond one process, through the real CLI on small synthetic
cactus folders: two gloo processes under torchrun (rank 0 packs, each rank streams half
the images, rank 0 alone writes) with the shards packed on a Dask cluster, the shards
Dask packs byte for byte those packed here, and a `compete fit` SIGKILLed after its
first checkpoint resumed from it."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from competitions.tabular import media_synth
from tests.test_distributed import cluster  # noqa: F401  (the fixture: a Dask LocalCluster on 127.0.0.1)

CACTUS = media_synth.LAYOUTS[0]


def test_image_shards_packed_on_dask_are_the_bytes_packed_here(tmp_path, cluster, monkeypatch):  # noqa: F811
    from common import parallel, vision

    data = media_synth.make(tmp_path / "data", CACTUS, rows=40, seed=0)
    train = pd.read_csv(data / "train.csv")
    files = [data / "train" / name for name in train["id"]]
    files[3].write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    labels = train["has_cactus"].to_numpy(dtype=np.uint8)
    monkeypatch.setattr(vision, "SHARD_IMAGES", 8)  # several shards, so several Dask tasks
    sets = {}
    for where in ("here", "dask"):
        monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / f"cache-{where}"))
        with parallel.using(cluster.scheduler_address if where == "dask" else None):
            sets[where] = vision.pack(files, labels, 32, "train", workers=1, quiet=True)
    here, dask = sets["here"], sets["dask"]
    assert len(here.shards) == math.ceil(len(files) / 8) and "pack_images" in cluster.scheduler.task_prefixes
    names = sorted(path.name for path in here.directory.iterdir())
    assert names == sorted(path.name for path in dask.directory.iterdir())
    for name in names:
        assert (here.directory / name).read_bytes() == (dask.directory / name).read_bytes(), name
    # the unreadable image is left out and named; the others in order with their labels
    assert here.metadata["unreadable"][0][0] == str(files[3]) and here.count == len(files) - 1
    from common.loaders import read_shards
    read = list(read_shards(here))
    assert [key for key, _, _ in read] == [str(path) for i, path in enumerate(files) if i != 3]
    assert np.array_equal([int(label) for _, _, label in read], np.delete(labels, 3))
    assert read[0][1].shape == (32, 32, 3)
