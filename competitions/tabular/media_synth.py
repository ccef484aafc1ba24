"""Small image competitions in the layouts Kaggle ships them, for tests and the bench:
each writes the platform's files and the test's answers in answers/solution.csv
(submission shape).

- kaggle:aerial-cactus-identification: 32x32 RGB JPEGs in train/ and test/, train.csv
  `id,has_cactus` with the extension in the id, the sample `id,has_cactus`.
- kaggle:dog-breed-identification: JPEGs of varying sizes, labels.csv `id,breed`
  without the extension, the sample `id` + one probability column per breed.
- kaggle:planet-understanding-the-amazon-from-space: train-jpg/ and test-jpg/,
  train_v2.csv `image_name,tags` (space-separated tags), the sample the same shape.
- kaggle:plant-seedlings-classification: train/<Species>/*.png (some grey, some with an
  alpha channel, varying sizes), a flat test/, the sample `file,species`.

What decides a class is drawn, not written: a shape, its orientation, a texture or a
hue, placed at random over a noisy background with label noise, so a model must look
(a pixel logistic regression does worse than a CNN) but a small CNN learns it in a
couple of epochs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common import io

LAYOUTS = ("aerial-cactus-identification", "dog-breed-identification", "planet-understanding-the-amazon-from-space",
           "plant-seedlings-classification")
ROWS = {"small": {"aerial-cactus-identification": 600, "dog-breed-identification": 400,
                  "planet-understanding-the-amazon-from-space": 400, "plant-seedlings-classification": 360},
        "full": {"aerial-cactus-identification": 6000, "dog-breed-identification": 3000,
                 "planet-understanding-the-amazon-from-space": 4000, "plant-seedlings-classification": 2400}}
BREEDS = ("beagle", "collie", "husky", "pug", "whippet")
WEATHER = ("clear", "cloudy", "haze", "partly_cloudy")
LAND = ("agriculture", "primary", "road", "water")
SPECIES = ("Black-grass", "Charlock", "Common Chickweed", "Maize")
LABEL_NOISE = 0.05


def background(rng: np.random.Generator, size: tuple[int, int], tint=None) -> np.ndarray:
    """A smooth random field plus pixel noise: the clutter every picture sits in."""
    height, width = size
    coarse = rng.uniform(60, 190, size=(4, 4, 3))
    rows = np.linspace(0, 3, height)[:, None]
    columns = np.linspace(0, 3, width)[None, :]
    r0, c0 = np.clip(rows.astype(int), 0, 2), np.clip(columns.astype(int), 0, 2)
    fr, fc = (rows - r0)[..., None], (columns - c0)[..., None]
    field = (coarse[r0, c0] * (1 - fr) * (1 - fc) + coarse[r0 + 1, c0] * fr * (1 - fc)
             + coarse[r0, c0 + 1] * (1 - fr) * fc + coarse[r0 + 1, c0 + 1] * fr * fc)
    if tint is not None:
        field = 0.6 * field + 0.4 * np.asarray(tint, dtype=float)
    return field + rng.normal(0, 18, size=(height, width, 3))


def bar(image: np.ndarray, rng, angle: float, colour, length: float = 0.7, thickness: float = 0.12) -> None:
    """A bar through a random point at `angle` (radians), painted in place."""
    height, width, _ = image.shape
    cy, cx = rng.uniform(0.3, 0.7) * height, rng.uniform(0.3, 0.7) * width
    y, x = np.mgrid[0:height, 0:width]
    along = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    across = -(x - cx) * np.sin(angle) + (y - cy) * np.cos(angle)
    mask = (np.abs(along) < length * width / 2) & (np.abs(across) < max(1.0, thickness * width / 2))
    image[mask] = 0.35 * image[mask] + 0.65 * np.asarray(colour, dtype=float)


def blob(image: np.ndarray, rng, colour, radius: float = 0.18) -> None:
    height, width, _ = image.shape
    cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.25, 0.75) * width
    y, x = np.mgrid[0:height, 0:width]
    mask = (y - cy) ** 2 + (x - cx) ** 2 < (radius * min(height, width)) ** 2
    image[mask] = 0.4 * image[mask] + 0.6 * np.asarray(colour, dtype=float)


def stripes(image: np.ndarray, rng, angle: float, period: float, strength: float = 45.0) -> None:
    height, width, _ = image.shape
    y, x = np.mgrid[0:height, 0:width]
    wave = np.sin(2 * np.pi * ((x * np.cos(angle) + y * np.sin(angle)) / (period * width) + rng.uniform()))
    image += strength * wave[..., None]


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)


def save(array: np.ndarray, path: Path, mode: str | None = None, **options) -> None:
    from PIL import Image

    picture = Image.fromarray(array)
    if mode:
        picture = picture.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(path) as temporary:
        picture.save(temporary, format=path.suffix.lstrip(".").upper().replace("JPG", "JPEG"), **options)


def noisy(labels: np.ndarray, rng, classes: int) -> np.ndarray:
    """The labels written to train: a few flipped, as real annotation is."""
    flip = rng.random(len(labels)) < LABEL_NOISE
    changed = labels.copy()
    changed[flip] = rng.integers(0, classes, size=int(flip.sum()))
    return changed


def split(total: int) -> int:
    return total * 3 // 4


def ids(rng, count: int, length: int = 12) -> list[str]:
    """Random hexadecimal names: nothing of the label is in the name or the order."""
    return ["".join(f"{byte:02x}" for byte in rng.integers(0, 256, size=(length + 1) // 2))[:length] for _ in range(count)]


def cactus(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    total = rows + rows // 3
    labels = (rng.random(total) < 0.75).astype(int)   # the real set is three quarters cactus
    names = [f"{name}.jpg" for name in ids(rng, total, 32)]
    for index, (name, label) in enumerate(zip(names, labels)):
        image = background(rng, (32, 32), tint=(150, 120, 80))
        if label:   # a cactus is an upright green bar; both classes have leaning bars of either colour
            bar(image, rng, np.pi / 2 + rng.normal(0, 0.15), (60, 150, 60), length=0.65, thickness=0.14)
        for _ in range(int(rng.integers(0, 2)) + 1 - label):
            angle = rng.uniform(0, np.pi)
            angle = angle + 0.9 if abs(angle - np.pi / 2) < 0.45 else angle
            bar(image, rng, angle, (60, 150, 60) if rng.random() < 0.5 else (150, 140, 90), length=0.65, thickness=0.14)
        folder = "train" if index < split(total) else "test"
        save(to_uint8(image), out / folder / name, quality=90)
    train, test = slice(0, split(total)), slice(split(total), total)
    written = noisy(labels[train], rng, 2)
    io.write_csv(pd.DataFrame({"id": names[train], "has_cactus": written}), out / "train.csv")
    io.write_csv(pd.DataFrame({"id": names[test], "has_cactus": 0.5}), out / "sample_submission.csv")
    io.write_csv(pd.DataFrame({"id": names[test], "has_cactus": labels[test]}), out / "answers" / "solution.csv")


def dogs(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    total = rows + rows // 3
    labels = rng.integers(0, len(BREEDS), size=total)
    names = ids(rng, total, 32)
    hues = [(170, 120, 70), (200, 190, 170), (120, 120, 130), (190, 160, 110), (110, 90, 80)]
    for index, (name, label) in enumerate(zip(names, labels)):
        size = (int(rng.integers(40, 90)), int(rng.integers(40, 90)))   # (height, width): every photo its own
        image = background(rng, size)
        stripes(image, rng, angle=label * np.pi / len(BREEDS), period=0.25, strength=30)
        blob(image, rng, hues[label], radius=0.22)
        folder = "train" if index < split(total) else "test"
        save(to_uint8(image), out / folder / f"{name}.jpg", quality=88)
    train, test = slice(0, split(total)), slice(split(total), total)
    written = noisy(labels[train], rng, len(BREEDS))
    io.write_csv(pd.DataFrame({"id": names[train], "breed": np.asarray(BREEDS)[written]}), out / "labels.csv")
    sample = pd.DataFrame({"id": names[test], **{breed: 1 / len(BREEDS) for breed in BREEDS}})
    io.write_csv(sample, out / "sample_submission.csv")
    truth = pd.DataFrame({"id": names[test], **{breed: (labels[test] == i).astype(int) for i, breed in enumerate(BREEDS)}})
    io.write_csv(truth, out / "answers" / "solution.csv")


def planet(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    total = rows + rows // 3
    names = [f"train_{i}" for i in range(split(total))] + [f"test_{i}" for i in range(total - split(total))]
    tags = []
    for index, name in enumerate(names):
        weather = WEATHER[rng.choice(4, p=[0.55, 0.1, 0.15, 0.2])]
        land = [tag for tag, share in zip(LAND, (0.35, 0.8, 0.25, 0.2)) if rng.random() < share]
        if weather == "cloudy":
            land = []   # nothing is seen through cloud, as in the real labels
        image = background(rng, (48, 48), tint=(70, 110, 60) if "primary" in land else (140, 120, 100))
        if "agriculture" in land:
            stripes(image, rng, angle=0.0, period=0.18, strength=25)
            stripes(image, rng, angle=np.pi / 2, period=0.18, strength=25)
        if "water" in land:
            blob(image, rng, (40, 70, 160), radius=0.2)
        if "road" in land:
            bar(image, rng, rng.uniform(0, np.pi), (200, 200, 200), length=1.2, thickness=0.05)
        if weather == "haze":
            image = 0.5 * image + 0.5 * 200
        elif weather == "cloudy":
            image = 0.2 * image + 0.8 * 235
        elif weather == "partly_cloudy":
            blob(image, rng, (240, 240, 240), radius=0.3)
        folder = "train-jpg" if index < split(total) else "test-jpg"
        save(to_uint8(image), out / folder / f"{name}.jpg", quality=90)
        tags.append(" ".join(sorted([weather, *land])))
    train, test = slice(0, split(total)), slice(split(total), total)
    io.write_csv(pd.DataFrame({"image_name": names[train], "tags": tags[train]}), out / "train_v2.csv")
    io.write_csv(pd.DataFrame({"image_name": names[test], "tags": "clear primary"}), out / "sample_submission_v2.csv")
    io.write_csv(pd.DataFrame({"image_name": names[test], "tags": tags[test]}), out / "answers" / "solution.csv")


def seedlings(out: Path, rows: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    total = rows + rows // 3
    labels = rng.integers(0, len(SPECIES), size=total)
    names = [f"{name}.png" for name in ids(rng, total, 9)]
    for index, (name, label) in enumerate(zip(names, labels)):
        side = int(rng.integers(36, 72))
        image = background(rng, (side, side), tint=(110, 90, 70))   # soil
        leaves = (1, 2, 3, 4)[label]
        for leaf in range(leaves):
            bar(image, rng, angle=leaf * np.pi / leaves + rng.normal(0, 0.15), colour=(60, 160, 60),
                length=0.5, thickness=0.1 + 0.04 * (label % 2))
        array = to_uint8(image)
        mode = ("RGBA", "L", None)[index % 3]   # a mixed bag of modes, as the real PNGs are
        if index < split(total):
            save(array, out / "train" / SPECIES[labels[index]] / name, mode=mode)
        else:
            save(array, out / "test" / name, mode=mode)
    test = slice(split(total), total)
    io.write_csv(pd.DataFrame({"file": names[test], "species": SPECIES[0]}), out / "sample_submission.csv")
    io.write_csv(pd.DataFrame({"file": names[test], "species": np.asarray(SPECIES)[labels[test]]}),
                 out / "answers" / "solution.csv")


MAKERS = {"aerial-cactus-identification": cactus, "dog-breed-identification": dogs,
          "planet-understanding-the-amazon-from-space": planet, "plant-seedlings-classification": seedlings}


def make(out: Path, slug: str, rows: int | None = None, seed: int = 0, scale: str = "small") -> Path:
    """Write the synthetic competition of `slug` (one of LAYOUTS) into `out`."""
    if slug not in MAKERS:
        raise io.InputError(f"no synthetic image layout {slug!r}; known: {', '.join(LAYOUTS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    MAKERS[slug](out, rows or ROWS[scale][slug], seed)
    return out
