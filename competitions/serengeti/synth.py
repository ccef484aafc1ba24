"""Synthetic Hakuna Ma-data: camera-trap sequences in the real file layout.

What is real: paths (`S1/B04/B04_R1/S1_B04_R1_PICT0001.JPG`), ids (`SER_S1#B04#1#1`),
the CSV files and their columns, the 54 labels in the platform's order, JPEGs with an
EXIF DateTimeOriginal, bursts of 1-3 frames, `empty` in 75% of sequences (Snapshot
Serengeti: about three quarters of the capture events hold no animal, Swanson et al.
2015, Scientific Data 2:150026; Norouzzadeh et al. 2018, PNAS), a long tail of species,
some sequences with two species, test sequences from a season not in train, and the
dirt of a real crawl (truncated JPEGs, a file listed but absent).

The statistics the model has to cope with follow the real frames (COMPETITIONS.md):
the cameras take 2048x1536 frames, by day in colour and by night as grey infrared lit
by the flash; an animal's body is from about 2.5% of the frame's height (far away: a
few pixels-wide speck covering a tenth of a percent of the frame) to half of it and
more (frame-filling, legs and head beyond the edges), log-uniform in between, so most
animals are small. Within a burst the animals walk: each moves between shots and may
leave the frame by the second or third, while the site's background stays put (the
camera is fixed), as frame differencing expects.

The shift the hidden test brings: a later season, partly from cameras no training
season had (Snapshot Serengeti's grid has ~225 sites, and cameras are moved, replaced
and added between seasons). Each season has a look of its own - the grass from dry
gold to wet-season green, its height (the grain's contrast), the light's level and
colour - and each camera a colour response and gain of its own (a new camera model or
a rusted housing shifts them), drawn from fixed plausible ranges; the test season is a
fresh draw from the same ranges, and half its sites are new.

What is not real: the images. Each site is a procedural savanna (sky, horizon, ground
colour, grain, acacias); each species is a body shape, leg and neck length, colour
pair and coat pattern of its own, drawn in proportion to its size.

Scales. The real data (6.7 M images, ~6 TB, 10 seasons + a hidden one) cannot be made
here. Frames are a proportional scale-down of 2048x1536 (every size above is a share
of the frame, so the animal-to-frame ratios are the real ones): `full` draws them at
512x384, a quarter of the real side and four times the side the model reads them at
(its 128x96 input is the real frame decoded at 1/8 scale, halved); at 1024x768 the ~15,500
images took ~25 minutes to write on this shared 2-core machine, at 2048x1536 they
would need ~10 GB. `small` draws 256x192 frames for the tests (~250 sequences,
seconds). `full` keeps the structure - 4 training seasons on 12 sites and a held-out
fifth on 6 of them and 6 new ones - at 6,000 sequences (~15,500 images, ~0.7 GB), written by two processes in
minutes: the common species appear hundreds of times and the tail a handful, as in
the real long tail.
"""
from __future__ import annotations

import io as _io
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from common import io
from competitions.serengeti.data import CLASSES, EMPTY, FILE, ID, SUBMISSION_FORMAT, TEST_METADATA, TIME, TRAIN_LABELS, TRAIN_METADATA

REAL_FRAME = (2048, 1536)   # (width, height) of the real cameras' frames

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
    "small": dict(train_seasons=2, sites=4, new_sites=2, sequences=80, test_sequences=90, frame=(256, 192), workers=1),
    "full": dict(train_seasons=4, sites=12, new_sites=6, sequences=1200, test_sequences=1200, frame=(512, 384), workers=2),
}
# `sites` are the training seasons' cameras; the test season keeps `new_sites` fewer of
# them and adds `new_sites` cameras no training season had.
EMPTY_SHARE, SECOND_SPECIES_SHARE = 0.75, 0.06
# An animal's body height as a share of the frame's height, log-uniform between these
# (a species' own size multiplies it): far away to frame-filling.
FARTHEST, NEAREST = 0.025, 0.5


@dataclass(frozen=True)
class Look:
    """How one species is drawn."""

    color: np.ndarray
    second: np.ndarray
    pattern: int          # 0 solid, 1 vertical stripes, 2 spots, 3 bands, 4 two-tone, 5 checks
    frequency: float      # coat pattern cycles per body height (over 2 pi)
    aspect: float         # body width / height
    size: float
    legs: float
    neck: float


@lru_cache(maxsize=1)
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
            pattern=index % 6, frequency=float(rng.uniform(7, 24)),
            aspect=float(rng.uniform(1.0, 2.6)), size=float(rng.uniform(0.7, 1.3)),
            legs=float(rng.uniform(0.2, 1.3)), neck=float(rng.uniform(0.0, 1.6)) if index % 4 == 0 else 0.0)
    return looks


@dataclass(frozen=True)
class SeasonLook:
    """How one season looks: the grass and the light."""

    green: float          # 0: dry-season gold grass, 1: wet-season green
    grass: float          # grass height: the ground grain's contrast
    light: float          # daylight level
    cast: np.ndarray      # the light's colour: a gain per channel


@lru_cache(maxsize=16)
def season_look(season: int, seed: int) -> SeasonLook:
    rng = np.random.default_rng([seed, 79, season])
    return SeasonLook(green=float(rng.uniform(0, 1)), grass=float(rng.uniform(0.5, 1.6)),
                      light=float(rng.uniform(0.8, 1.15)), cast=rng.uniform(0.9, 1.1, 3).astype(np.float32))


@lru_cache(maxsize=64)
def camera_response(site: int, seed: int) -> np.ndarray:
    """A camera's colour response: a gain per channel (sensor, white balance, housing)."""
    rng = np.random.default_rng([seed, 80, site])
    return (rng.uniform(0.85, 1.15) * rng.uniform(0.92, 1.08, 3)).astype(np.float32)


def site_horizon(site: int, seed: int) -> float:
    """Where the horizon of a site lies, as a share of the frame's height."""
    return float(np.random.default_rng([seed, 78, site]).uniform(0.25, 0.5))


@lru_cache(maxsize=32)
def site_background(site: int, season: int, seed: int, frame: tuple[int, int]) -> np.ndarray:
    """A daylight savanna of one camera site in one season: (height, width, 3) float32.
    The layout (horizon, trees, grain) is the site's; the grass colour and height the
    season's. Every length is a share of the frame, so a site looks the same at every
    scale."""
    width, height = frame
    rng = np.random.default_rng([seed, 77, site])
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y, x = y / height, x / width
    horizon = site_horizon(site, seed) + 0.04 * np.sin(x * rng.uniform(2, 6) + rng.uniform(0, 6))
    sky = np.stack([150 + 48 * y, 180 + 38 * y, 235 - 19 * y], axis=-1)
    dry = np.array([rng.uniform(140, 200), rng.uniform(120, 170), rng.uniform(60, 100)], np.float32)
    wet = np.array([rng.uniform(70, 120), rng.uniform(110, 160), rng.uniform(40, 80)], np.float32)
    look = season_look(season, seed)
    ground_color = dry + (wet - dry) * np.float32(look.green)
    # grass grain a few real pixels across, the same at every scale; taller grass, more contrast
    coarse = rng.normal(0, 12, (192, 256, 1)).astype(np.float32)
    grain = np.kron(coarse, np.ones((-(-height // 192), -(-width // 256), 1), np.float32))[:height, :width]
    ground = ground_color + grain * np.array([1.0, 1.0, 0.6], np.float32) * np.float32(look.grass)
    image = np.where((y < horizon)[..., None], sky, ground)
    for _ in range(rng.integers(1, 4)):  # acacias: trunk and a flat crown
        tx, ty = rng.uniform(0, 1), float(horizon.mean()) + rng.uniform(-0.02, 0.1)
        crown_width = rng.uniform(0.08, 0.24)
        aspect = width / height
        trunk = (np.abs(x - tx) < 0.012) & (y < ty) & (y > ty - crown_width * 0.6 * aspect)
        crown = (((x - tx) / crown_width) ** 2 + ((y - (ty - crown_width * 0.6 * aspect)) / (crown_width * 0.18 * aspect)) ** 2) < 1
        image[trunk] = (70, 55, 40)
        image[crown] = (60 + rng.uniform(0, 30), 90 + rng.uniform(0, 30), 40)
    return image.astype(np.float32)


@lru_cache(maxsize=4)
def flash(frame: tuple[int, int]) -> np.ndarray:
    """The infrared flash: bright in the middle, dark at the edges."""
    width, height = frame
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.exp(-(((x - width / 2) / width) ** 2 + ((y - height * 0.6) / height) ** 2) * 3)


def draw_animal(image: np.ndarray, look: Look, cx: float, cy: float, height: float, facing: int) -> None:
    """Draw one animal whose body is `height` pixels high, centred at (cx, cy); only
    the pixels of its bounding box are computed."""
    frame_height, frame_width = image.shape[:2]
    width = height * look.aspect
    head_x, head_y = cx + facing * width * 1.05, cy - height * (0.4 + look.neck)
    top, bottom = int(np.floor(head_y - 0.5 * height)) - 1, int(np.ceil(cy + height * (1 + look.legs))) + 2
    left, right = int(np.floor(cx - 1.6 * width)) - 1, int(np.ceil(cx + 1.6 * width)) + 2
    top, bottom, left, right = max(top, 0), min(bottom, frame_height), max(left, 0), min(right, frame_width)
    if top >= bottom or left >= right:
        return
    y, x = np.mgrid[top:bottom, left:right].astype(np.float32)
    u, v = (x - cx) / width, (y - cy) / height
    body = u ** 2 + v ** 2 < 1
    legs = np.zeros_like(body)
    for offset in (-0.6, -0.25, 0.25, 0.6):
        legs |= (np.abs(x - (cx + offset * width)) < max(0.6, 0.12 * height)) & (y > cy) & (y < cy + height * (1 + look.legs))
    neck = (np.abs(x - (cx + facing * width * 0.8)) < 0.25 * height) & (y > head_y) & (y < cy) if look.neck else np.zeros_like(body)
    head = ((x - head_x) / (0.45 * height)) ** 2 + ((y - head_y) / (0.4 * height)) ** 2 < 1
    f = look.frequency
    along, down = (x - cx) / height, (y - cy) / height   # the coat scales with the animal
    if look.pattern == 1:
        second = np.sin(along * f) > 0.3
    elif look.pattern == 2:
        second = (np.sin(along * f) * np.sin(down * f)) > 0.45
    elif look.pattern == 3:
        second = np.sin(down * f) > 0.3
    elif look.pattern == 4:
        second = v > 0.1
    elif look.pattern == 5:
        second = (np.sin(along * f * 0.6) > 0) ^ (np.sin(down * f * 0.6) > 0)
    else:
        second = np.zeros_like(body)
    coat = np.where(second[..., None], look.second, look.color)
    shape = body | legs | neck | head
    patch = image[top:bottom, left:right]
    patch[shape] = coat[shape]
    patch[legs | neck] = patch[legs | neck] * 0.8


def render(background: np.ndarray, animals, night: bool, light: float, rng: np.random.Generator,
           response: np.ndarray | None = None) -> np.ndarray:
    """One frame: the site's background, the animals where they are in this shot, all
    under this burst's light (a slight flicker between shots; `light` a level or a gain
    per channel) and seen through the camera's colour `response`, sensor noise; a night
    shot is grey infrared lit by the flash."""
    height, width = background.shape[:2]
    image = background.copy()
    for look, cx, cy, body_height, facing in animals:
        draw_animal(image, look, cx, cy, body_height, facing)
    gain = np.asarray(light, np.float32) * np.float32(rng.uniform(0.985, 1.015))
    image = image * (gain if response is None else gain * response)
    if night:
        grey = image @ np.array([0.3, 0.59, 0.11], np.float32) * (0.25 + 0.6 * flash((width, height)))
        image = grey[..., None] + rng.standard_normal((height, width, 1), dtype=np.float32) * 6
        image = np.repeat(image, 3, axis=-1)
    else:
        image = image + rng.standard_normal((height, width, 1), dtype=np.float32) * 4
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


def plan_animals(label: np.ndarray, horizon: float, frame: tuple[int, int], rng: np.random.Generator):
    """The animals of one burst: (species, x at the first shot, y, body height, facing,
    pixels walked per shot), in frame pixels. Far animals stand near the horizon, near
    ones low in the frame; every one is in view at the first shot (it triggered the
    camera), and walks about its own body height or so between shots."""
    width, height = frame
    animals = []
    for species in np.flatnonzero(label):
        if species == EMPTY:
            continue
        look = species_looks()[species]
        for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
            nearness = rng.random()
            body = height * look.size * FARTHEST * (NEAREST / FARTHEST) ** nearness
            ground = height * (horizon + (1 - horizon) * (0.05 + 0.85 * nearness))
            cy = ground - body * (1 + look.legs) + rng.uniform(-0.02, 0.02) * height
            facing = int(rng.choice([-1, 1]))
            animals.append((int(species), rng.uniform(0.05, 0.95) * width, cy, body, facing, facing * body * rng.uniform(0.3, 1.5)))
    return animals


def _write_picture(job) -> None:
    """Render, encode and write one image (a pure function of its job: the same bytes
    in any process)."""
    path, site, season, seed, frame, animals, night, light, moment, picture_seed, corrupt = job
    looks = species_looks()
    picture_rng = np.random.default_rng(picture_seed)
    drawn = [(looks[species], cx, cy, body, facing) for species, cx, cy, body, facing in animals]
    look = season_look(season, seed)
    data = jpeg(render(site_background(site, season, seed, frame), drawn, night, light * look.light * look.cast,
                       picture_rng, camera_response(site, seed)), moment)
    if corrupt:
        data = data[: len(data) * 2 // 5]
    io.write_bytes(path, data)


def synth(out_dir: Path, seed: int = 0, scale: str = "small") -> None:
    from common.progress import tqdm  # a bar on a terminal, plain lines in a log

    if scale not in SCALES:
        raise io.InputError(f"serengeti: unknown scale {scale!r}; known: {', '.join(SCALES)}")
    settings = SCALES[scale]
    frame_size = tuple(settings["frame"])
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    sites = _site_codes(settings["sites"] + settings["new_sites"], rng)
    # the training seasons' cameras, and the test season's: some of them and new ones
    trained_at = sorted(rng.choice(len(sites), size=settings["sites"], replace=False).tolist())
    kept = rng.choice(trained_at, size=settings["sites"] - settings["new_sites"], replace=False).tolist()
    tested_at = sorted(kept + [index for index in range(len(sites)) if index not in trained_at])
    seasons = [f"S{number}" for number in range(1, settings["train_seasons"] + 2)]

    rows, labels, pictures = [], [], []
    for season_number, season in enumerate(seasons, start=1):
        count = settings["test_sequences"] if season == seasons[-1] else settings["sequences"]
        season_labels = _draw_labels(count, rng)
        start = datetime(2010, 7, 1) + timedelta(days=200 * (season_number - 1))
        season_sites = tested_at if season == seasons[-1] else trained_at
        site_of = np.asarray(season_sites)[rng.choice(len(season_sites), size=count)]
        for site_index in season_sites:
            site = sites[site_index]
            members = np.flatnonzero(site_of == site_index)
            times = sorted(start + timedelta(seconds=int(s)) for s in rng.integers(0, 150 * 86400, len(members)))
            roll, picture = 1, 0
            for number, (row, taken) in enumerate(zip(members, times), start=1):
                if number > 1 and rng.random() < 0.05:  # a new memory card: the roll and the picture count restart
                    roll, picture = roll + 1, 0
                seq_id = f"SER_{season}#{site}#{roll}#{number}"
                frames = int(rng.choice([1, 2, 3], p=[0.15, 0.10, 0.75]))
                burst_rng = np.random.default_rng([seed, 13, len(labels)])
                animals = plan_animals(season_labels[row], site_horizon(site_index, seed), frame_size, burst_rng)
                light = float(burst_rng.uniform(0.85, 1.1))
                night = taken.hour < 6 or taken.hour >= 19
                for frame in range(frames):
                    picture += 1
                    path = f"{season}/{site}/{site}_R{roll}/{season}_{site}_R{roll}_PICT{picture:04d}.JPG"
                    moment = taken + timedelta(seconds=frame)
                    rows.append({ID: seq_id, FILE: path, TIME: moment.strftime("%Y-%m-%d %H:%M:%S"), "season": season})
                    shot = [(species, x + step * frame, cy, body, facing) for species, x, cy, body, facing, step in animals]
                    pictures.append((site_index, season_number, shot, night, light, moment))
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

    jobs = [(out_dir / metadata[FILE].iloc[index], site, season, seed, frame_size, shot, night, light, moment,
             [seed, 11, index], index in corrupt)
            for index, (site, season, shot, night, light, moment) in enumerate(pictures) if index not in missing]
    workers = min(settings["workers"], os.cpu_count() or 1)
    progress = dict(total=len(jobs), desc="serengeti images", unit="image", leave=False)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in tqdm(pool.map(_write_picture, jobs, chunksize=32), **progress):
                pass
    else:
        for job in tqdm(jobs, **progress):
            _write_picture(job)

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
