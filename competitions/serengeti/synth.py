"""Synthetic Hakuna Ma-data: camera-trap sequences in the real file layout.

What is real: paths (`S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG`), ids (`SER_S1#B04#1#1`),
the CSV files and their columns, the 54 labels in the platform's order, JPEGs with an
EXIF DateTimeOriginal, bursts of 1-3 frames, `empty` in ~70% of sequences (71% in the
real test season), a long tail of species, a few sequences with two species, test
sequences from a season not in train, and the dirt of a real crawl (truncated JPEGs,
a file listed but absent).

What is not: the images. Each site is a procedural savanna (sky, horizon, ground
colour, acacias) seen by day or as a grey infrared night shot; each species is a body
shape, leg and neck length, colour pair and coat pattern of its own. Some frames of an
animal sequence show nothing (the animal walked out), as in real bursts.

Scales. The real data (6.7 M images, ~6 TB, 10 seasons + a hidden one) cannot be made
here. `small` (~250 sequences, a few seconds) is for tests. `full` keeps the
structure - 4 training seasons and a held-out fifth, 12 sites, 128x96 JPEGs - at
6,000 sequences (~15,500 images, ~100 MB), the size this shared 2-core machine trains
a small CNN on in minutes: the common species appear hundreds of times and the
tail a handful, as in the real long tail, without a run taking an hour.
"""
from __future__ import annotations

import io as _io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from competitions.serengeti.data import CLASSES, EMPTY, FILE, ID, SUBMISSION_FORMAT, TEST_METADATA, TIME, TRAIN_LABELS, TRAIN_METADATA

WIDTH, HEIGHT = 128, 96

# Common to rare, roughly as in Snapshot Serengeti; the frequency falls as 1/rank.
BY_FREQUENCY = (
    "wildebeest", "zebra", "gazellethomsons", "buffalo", "hartebeest", "elephant", "impala", "gazellegrants", "giraffe",
    "warthog", "guineafowl", "hyenaspotted", "otherbird", "topi", "lionfemale", "eland", "baboon", "reedbuck", "dikdik",
    "cheetah", "hippopotamus", "koribustard", "ostrich", "mongoose", "jackal", "secretarybird", "lionmale", "waterbuck",
    "batearedfox", "aardvark", "porcupine", "serval", "leopard", "monkeyvervet", "hare", "cattle", "vulture", "aardwolf",
    "honeybadger", "bushbuck", "hyenastriped", "rodents", "insectspider", "reptiles", "steenbok", "duiker", "genet",
    "civet", "wildcat", "caracal", "rhinoceros", "bat", "zorilla",
)
SCALES = {
    "small": dict(train_seasons=2, sites=4, sequences=80, test_sequences=90),
    "full": dict(train_seasons=4, sites=12, sequences=1200, test_sequences=1200),
}
EMPTY_SHARE, SECOND_SPECIES_SHARE = 0.70, 0.06


@dataclass(frozen=True)
class Look:
    """How one species is drawn."""

    color: np.ndarray
    second: np.ndarray
    pattern: int          # 0 solid, 1 vertical stripes, 2 spots, 3 bands, 4 two-tone, 5 checks
    frequency: float
    aspect: float         # body width / height
    size: float
    legs: float
    neck: float


def species_looks() -> dict[int, Look]:
    looks = {}
    for index, name in enumerate(CLASSES):
        if index == EMPTY:
            continue
        rng = np.random.default_rng([2020, index])
        hue = rng.random(3)
        looks[index] = Look(
            color=(60 + 170 * hue).astype(np.float32),
            second=(20 + 200 * rng.random(3)).astype(np.float32),
            pattern=index % 6, frequency=float(rng.uniform(0.25, 0.8)),
            aspect=float(rng.uniform(1.0, 2.6)), size=float(rng.uniform(0.55, 1.5)),
            legs=float(rng.uniform(0.2, 1.3)), neck=float(rng.uniform(0.0, 1.6)) if index % 4 == 0 else 0.0)
    return looks


def site_background(site: int, seed: int) -> np.ndarray:
    """A daylight savanna of one camera site: (HEIGHT, WIDTH, 3) float32."""
    rng = np.random.default_rng([seed, 77, site])
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    horizon = HEIGHT * rng.uniform(0.25, 0.5) + 4 * np.sin(x / WIDTH * rng.uniform(2, 6) + rng.uniform(0, 6))
    sky = np.stack([150 + 0.5 * y, 180 + 0.4 * y, 235 - 0.2 * y], axis=-1)
    ground_color = np.array([rng.uniform(140, 200), rng.uniform(120, 170), rng.uniform(60, 100)], np.float32)
    grain = rng.normal(0, 12, (HEIGHT, WIDTH, 1)).astype(np.float32)
    ground = ground_color + grain * np.array([1.0, 1.0, 0.6], np.float32)
    image = np.where((y < horizon)[..., None], sky, ground)
    for _ in range(rng.integers(1, 4)):  # acacias: trunk and a flat crown
        tx, ty = rng.uniform(0, WIDTH), horizon.mean() + rng.uniform(-2, 10)
        width = rng.uniform(10, 30)
        trunk = (np.abs(x - tx) < 1.5) & (y < ty) & (y > ty - width * 0.6)
        crown = (((x - tx) / width) ** 2 + ((y - (ty - width * 0.6)) / (width * 0.18)) ** 2) < 1
        image[trunk] = (70, 55, 40)
        image[crown] = (60 + rng.uniform(0, 30), 90 + rng.uniform(0, 30), 40)
    return image.astype(np.float32)


def draw_animal(image: np.ndarray, look: Look, cx: float, cy: float, scale: float, facing: int) -> None:
    height = 12.0 * look.size * scale
    width = height * look.aspect
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    u, v = (x - cx) / width, (y - cy) / height
    body = u ** 2 + v ** 2 < 1
    legs = np.zeros_like(body)
    for offset in (-0.6, -0.25, 0.25, 0.6):
        legs |= (np.abs(x - (cx + offset * width)) < max(1.0, 0.12 * height)) & (y > cy) & (y < cy + height * (1 + look.legs))
    head_x, head_y = cx + facing * width * 1.05, cy - height * (0.4 + look.neck)
    neck = (np.abs(x - (cx + facing * width * 0.8)) < 0.25 * height) & (y > head_y) & (y < cy) if look.neck else np.zeros_like(body)
    head = ((x - head_x) / (0.45 * height)) ** 2 + ((y - head_y) / (0.4 * height)) ** 2 < 1
    f = look.frequency
    if look.pattern == 1:
        second = np.sin(x * f * 2.5) > 0.3
    elif look.pattern == 2:
        second = (np.sin(x * f * 2) * np.sin(y * f * 2)) > 0.45
    elif look.pattern == 3:
        second = np.sin(y * f * 2.5) > 0.3
    elif look.pattern == 4:
        second = v > 0.1
    elif look.pattern == 5:
        second = (np.sin(x * f * 1.5) > 0) ^ (np.sin(y * f * 1.5) > 0)
    else:
        second = np.zeros_like(body)
    coat = np.where(second[..., None], look.second, look.color)
    shape = body | legs | neck | head
    image[shape] = coat[shape]
    image[legs | neck] = image[legs | neck] * 0.8


def render(background: np.ndarray, animals: list[tuple[Look, float, float, float, int]], night: bool,
           rng: np.random.Generator) -> np.ndarray:
    image = background * rng.uniform(0.85, 1.1)
    for look, cx, cy, scale, facing in animals:
        draw_animal(image, look, cx, cy, scale, facing)
    image = image + rng.normal(0, 5, image.shape)
    if night:  # infrared: grey, lit by the flash in the middle, dark at the edges
        y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        flash = np.exp(-(((x - WIDTH / 2) / WIDTH) ** 2 + ((y - HEIGHT * 0.6) / HEIGHT) ** 2) * 3)
        grey = image @ np.array([0.3, 0.59, 0.11], np.float32) * (0.25 + 0.6 * flash)
        image = np.repeat(grey[..., None], 3, axis=-1) + rng.normal(0, 6, (HEIGHT, WIDTH, 1))
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg(pixels: np.ndarray, taken: datetime) -> bytes:
    from PIL import Image
    from PIL.ExifTags import Base, IFD

    exif = Image.Exif()
    stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
    exif[Base.DateTime] = stamp
    exif[Base.Make] = "CUDDEBACK"
    exif.get_ifd(IFD.Exif)[Base.DateTimeOriginal] = stamp
    buffer = _io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


def _site_codes(count: int, rng: np.random.Generator) -> list[str]:
    codes = sorted({f"{'BCDEFGHIJ'[i]}{j:02d}" for i in range(9) for j in range(1, 14)})
    return sorted(rng.choice(codes, size=count, replace=False).tolist())


def _draw_labels(count: int, rng: np.random.Generator) -> np.ndarray:
    ranks = np.arange(1, len(BY_FREQUENCY) + 1)
    weights = 1.0 / ranks ** 1.1
    weights /= weights.sum()
    species = np.array([CLASSES.index(name) for name in BY_FREQUENCY])
    labels = np.zeros((count, len(CLASSES)), np.uint8)
    empty = rng.random(count) < EMPTY_SHARE
    labels[empty, EMPTY] = 1
    for row in np.flatnonzero(~empty):
        labels[row, rng.choice(species, p=weights)] = 1
        if rng.random() < SECOND_SPECIES_SHARE:
            labels[row, rng.choice(species, p=weights)] = 1
    return labels


def synth(out_dir: Path, seed: int = 0, scale: str = "small") -> None:
    from tqdm.auto import tqdm

    if scale not in SCALES:
        raise io.InputError(f"serengeti: unknown scale {scale!r}; known: {', '.join(SCALES)}")
    settings = SCALES[scale]
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    looks = species_looks()
    sites = _site_codes(settings["sites"], rng)
    backgrounds = {site: site_background(index, seed) for index, site in enumerate(sites)}
    seasons = [f"S{number}" for number in range(1, settings["train_seasons"] + 2)]

    rows, labels, pictures = [], [], []
    for season_number, season in enumerate(seasons, start=1):
        count = settings["test_sequences"] if season == seasons[-1] else settings["sequences"]
        season_labels = _draw_labels(count, rng)
        start = datetime(2010, 7, 1) + timedelta(days=200 * (season_number - 1))
        site_of = rng.choice(len(sites), size=count)
        for site_index, site in enumerate(sites):
            members = np.flatnonzero(site_of == site_index)
            times = sorted(start + timedelta(seconds=int(s)) for s in rng.integers(0, 150 * 86400, len(members)))
            roll, picture = 1, 0
            for number, (row, taken) in enumerate(zip(members, times), start=1):
                if number > 1 and rng.random() < 0.05:  # a new memory card: the roll and the picture count restart
                    roll, picture = roll + 1, 0
                seq_id = f"SER_{season}#{site}#{roll}#{number}"
                frames = int(rng.choice([1, 2, 3], p=[0.15, 0.10, 0.75]))
                for frame in range(frames):
                    picture += 1
                    path = f"{season}/{site}/{site}_R{roll}/{season}_{site}_R{roll}_PICT{picture:04d}.JPG"
                    moment = taken + timedelta(seconds=frame)
                    rows.append({ID: seq_id, FILE: path, TIME: moment.strftime("%Y-%m-%d %H:%M:%S"), "season": season})
                    pictures.append((site, season_labels[row], frame, frames, moment))
                labels.append((seq_id, season, season_labels[row]))

    metadata = pd.DataFrame(rows)
    # Dirt: a few truncated JPEGs and one file listed but never written, in train and
    # in test; the missing test file is the only frame of its sequence.
    test_season = seasons[-1]
    is_test = (metadata["season"] == test_season).to_numpy()
    dirt_rng = np.random.default_rng([seed, 5])
    corrupt = set(dirt_rng.choice(np.flatnonzero(~is_test), size=3, replace=False)) | set(dirt_rng.choice(np.flatnonzero(is_test), size=2, replace=False))
    frames_per_seq = metadata.groupby(ID)[FILE].transform("size").to_numpy()
    lone_test = np.flatnonzero(is_test & (frames_per_seq == 1))
    missing = {int(dirt_rng.choice(np.flatnonzero(~is_test))), int(lone_test[0] if len(lone_test) else np.flatnonzero(is_test)[0])}
    corrupt -= missing

    for index in tqdm(range(len(metadata)), desc="serengeti images", unit="image", leave=False):
        site, label, frame, frames, moment = pictures[index]
        if index in missing:
            continue
        picture_rng = np.random.default_rng([seed, 11, index])
        animals = []
        # the animal may have left the frame by the second or third shot
        visible = frame == 0 or picture_rng.random() > 0.3
        if visible:
            for species in np.flatnonzero(label):
                if species == EMPTY:
                    continue
                for _ in range(int(picture_rng.choice([1, 1, 1, 2, 3]))):
                    depth = picture_rng.uniform(0.6, 1.4)
                    cy = HEIGHT * (0.45 + 0.35 * (depth - 0.6) / 0.8) + picture_rng.uniform(-4, 4)
                    animals.append((looks[species], picture_rng.uniform(10, WIDTH - 10), cy, depth, int(picture_rng.choice([-1, 1]))))
        night = moment.hour < 6 or moment.hour >= 19
        data = jpeg(render(backgrounds[site], animals, night, picture_rng), moment)
        if index in corrupt:
            data = data[: len(data) * 2 // 5]
        io.write_bytes(out_dir / metadata[FILE].iloc[index], data)

    columns = [ID, FILE, TIME]
    io.write_csv(metadata.loc[~is_test, columns], out_dir / TRAIN_METADATA)
    io.write_csv(metadata.loc[is_test, columns], out_dir / TEST_METADATA)
    label_frame = pd.DataFrame([row[2] for row in labels], columns=list(CLASSES)).astype(int)
    label_frame.insert(0, ID, [row[0] for row in labels])
    is_test_sequence = np.array([row[1] == test_season for row in labels])
    io.write_csv(label_frame[~is_test_sequence], out_dir / TRAIN_LABELS)
    io.write_csv(label_frame[is_test_sequence], out_dir / "answers" / "solution.csv")
    submission_format = label_frame[is_test_sequence].copy()
    submission_format[list(CLASSES)] = 0.0
    io.write_csv(submission_format, out_dir / SUBMISSION_FORMAT)
    io.write_text(out_dir / "answers" / "dirt.txt",
                  "".join(f"corrupt {metadata[FILE].iloc[i]}\n" for i in sorted(corrupt))
                  + "".join(f"missing {metadata[FILE].iloc[i]}\n" for i in sorted(missing)))
