"""Bad input never passes silently: a matrix of the ways a platform file, a submission or
an answer key goes wrong, across the four competitions and validate/score/submit/
runtime test/package.

Each case builds a tiny valid data folder by hand, breaks one thing, runs the real CLI
and asserts the contract of DESIGN.md: the exit code (2 unreadable input or usage, 1 a
failed check), one line naming the file and the row, id or column, no traceback, and
nothing left behind (no run directory, partial file, cache entry or temp folder).

The CLI runs in-process (click's runner) so the matrix costs seconds, not an import of
torch per case; a few cases at the end run it as a real process too.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from competitions.birdcall.data import SPECIES
from competitions.serengeti.data import CLASSES

# --- tiny valid data folders, made by hand --------------------------------------------

HOUSE_TRAIN = ["Id,MSSubClass,LotArea,Street,MoSold,YrSold,SalePrice",
               "1,60,8450,Pave,2,2008,208500", "2,20,9600,Pave,5,2007,181500", "3,60,11250,Pave,9,2008,223500",
               "4,70,9550,Pave,2,2006,140000", "5,60,14260,Pave,12,2008,250000", "6,50,14115,Pave,10,2009,143000"]
HOUSE_TEST = ["Id,MSSubClass,LotArea,Street,MoSold,YrSold", "1461,20,11622,Pave,6,2010", "1462,20,14267,Pave,6,2010"]
HOUSE_SAMPLE = ["Id,SalePrice", "1461,169277.05", "1462,187758.39"]

EVENT_HEADER = "EventId,Occurrence Local Date Time,Reporting Agency,Cause,Subcause,Status,longitude,latitude,road_segment_id"
UBER_TRAIN = [EVENT_HEADER] + [f"{100 + i},{day:02d}/0{month}/16 0{i % 10}:15,Law Enforcement,Stationary Vehicle,Other,Closed,"
                               f"18.6025,-33.93,{'SAAAAAA' if i % 2 else 'SBBBBBB'}"
                               for i, (day, month) in enumerate([(1, 1), (13, 1), (20, 2), (5, 3), (28, 3), (14, 4)])]
UBER_SAMPLE = ["datetime x segment_id,prediction", "2019-01-01 01:00:00 x SAAAAAA,0", "2019-01-01 01:00:00 x SBBBBBB,0"]

BIRD_TRAIN = ["ID,common_name", "A1B2C3,Cape Batis", "D4E5F6,Black Cuckoo", "G7H8J9,Cape Batis"]
BIRD_TEST_IDS = ["K1L2M3", "N4P5Q6"]

SERENGETI_IDS = ["SER_S1#B04#1#1", "SER_S1#B04#1#2", "SER_S2#C05#1#1"]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def house_prices(data: Path) -> None:
    write_lines(data / "train.csv", HOUSE_TRAIN)
    write_lines(data / "test.csv", HOUSE_TEST)
    write_lines(data / "sample_submission.csv", HOUSE_SAMPLE)


@pytest.fixture(scope="session")
def segments_zip(tmp_path_factory) -> bytes:
    """road_segments.zip with two 500 m segments near Cape Town."""
    import geopandas as gpd
    from shapely import LineString
    folder = tmp_path_factory.mktemp("segments")
    frame = gpd.GeoDataFrame({"ROADNO": ["N1", "N1"], "segment_id": ["SAAAAAA", "SBBBBBB"]},
                             geometry=[LineString([(18.600, -33.930), (18.605, -33.930)]),
                                       LineString([(18.611, -33.930), (18.616, -33.930)])], crs="EPSG:4326")
    frame.to_file(folder / "road_segments.shp", engine="pyogrio")
    archive = folder / "road_segments.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for part in sorted(folder.glob("road_segments.*")):
            if part.suffix != ".zip":
                zipped.write(part, part.name)
    return archive.read_bytes()


def birdcall(data: Path) -> None:
    write_lines(data / "Train.csv", BIRD_TRAIN)
    write_lines(data / "SampleSubmission.csv", ["ID," + ",".join(SPECIES)] + [f"{i}," + ",".join(["0.025"] * 40) for i in BIRD_TEST_IDS])
    for row in BIRD_TRAIN[1:]:
        (data / "Train").mkdir(parents=True, exist_ok=True)
        (data / "Train" / f"{row.split(',')[0]}.mp3").write_bytes(b"ID3")
    for clip in BIRD_TEST_IDS:
        (data / "Test").mkdir(parents=True, exist_ok=True)
        (data / "Test" / f"{clip}.mp3").write_bytes(b"ID3")


def serengeti(data: Path) -> None:
    write_lines(data / "train_metadata.csv", ["seq_id,file_name,datetime"] + [
        f"{s},{s.split('#')[0][4:]}/{s.split('#')[1]}/{s.replace('#', '_')}_PICT0001.JPG,2010-07-18 16:26:14" for s in SERENGETI_IDS])
    labels = [[0] * len(CLASSES) for _ in SERENGETI_IDS]
    for row in labels:
        row[CLASSES.index("empty")] = 1
    write_lines(data / "train_labels.csv", ["seq_id," + ",".join(CLASSES)] + [f"{s}," + ",".join(map(str, r)) for s, r in zip(SERENGETI_IDS, labels)])


def serengeti_with_test(data: Path) -> None:
    serengeti(data)
    write_lines(data / "test_metadata.csv", ["seq_id,file_name,datetime", "SER_S9#A01#1#1,S9/A01/x.JPG,2011-01-01 10:00:00"])
    write_lines(data / "submission_format.csv", ["seq_id," + ",".join(CLASSES), "SER_S9#A01#1#1," + ",".join(["0.5"] * len(CLASSES))])


BUILDERS = {"house-prices": house_prices, "birdcall": birdcall, "serengeti": serengeti, "serengeti-test": serengeti_with_test}


# --- mutations ---------------------------------------------------------------------------

def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def replace_line(name: str, index: int, line: str) -> Callable[[Path], None]:
    def mutate(data: Path) -> None:
        lines = lines_of(data / name)
        lines[index] = line
        write_lines(data / name, lines)
    return mutate


def set_cell(name: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Row 1 is the first data row (file line 2)."""
    def mutate(data: Path) -> None:
        lines = lines_of(data / name)
        header = lines[0].split(",")
        fields = lines[row].split(",")
        fields[header.index(column)] = value
        lines[row] = ",".join(fields)
        write_lines(data / name, lines)
    return mutate


def drop_column(name: str, column: str) -> Callable[[Path], None]:
    def mutate(data: Path) -> None:
        lines = [line.split(",") for line in lines_of(data / name)]
        at = lines[0].index(column)
        write_lines(data / name, [",".join(f[:at] + f[at + 1:]) for f in lines])
    return mutate


def add_column(name: str, column: str, value: str) -> Callable[[Path], None]:
    def mutate(data: Path) -> None:
        lines = lines_of(data / name)
        write_lines(data / name, [lines[0] + "," + column] + [line + "," + value for line in lines[1:]])
    return mutate


def header_only(name: str) -> Callable[[Path], None]:
    return lambda data: write_lines(data / name, lines_of(data / name)[:1])


def cut_mid_field(name: str, keep: int) -> Callable[[Path], None]:
    """The file cut `keep` characters before its end (a download that stopped)."""
    def mutate(data: Path) -> None:
        content = (data / name).read_bytes()
        (data / name).write_bytes(content[:-(keep + 1)])
    return mutate


def semicolons(name: str) -> Callable[[Path], None]:
    return lambda data: write_lines(data / name, [line.replace(",", ";") for line in lines_of(data / name)])


def latin1(name: str, row: int, column: str, value: str = "Caf\u00e9") -> Callable[[Path], None]:
    def mutate(data: Path) -> None:
        set_cell(name, row, column, value)(data)
        (data / name).write_bytes((data / name).read_text(encoding="utf-8").encode("latin-1"))
    return mutate


def remove(name: str) -> Callable[[Path], None]:
    return lambda data: (data / name).unlink()


def rewrite(name: str, transform: Callable[[list[str]], list[str]]) -> Callable[[Path], None]:
    return lambda data: write_lines(data / name, transform(lines_of(data / name)))


def both(*mutations) -> Callable[[Path], None]:
    def mutate(data: Path) -> None:
        for mutation in mutations:
            mutation(data)
    return mutate


# --- the matrix --------------------------------------------------------------------------

@dataclass
class Case:
    kind: str
    data: str                      # which builder
    mutate: Callable[[Path], None]
    command: tuple                 # CLI words; DATA, FILE and ANSWERS are filled in
    code: int
    says: tuple                    # substrings the message must hold: the file, and the row/id/column
    file: Callable[[Path], Path] | None = None   # a submission file the command reads, built from data


def fit(competition: str) -> tuple:
    return ("fit", competition, "--data", "DATA", "--quiet")


def run(competition: str) -> tuple:
    return ("run", competition, "--data", "DATA", "--quiet", "--fast")


def submission_from_sample(name: str, transform: Callable[[list[str]], list[str]] | None = None, encoding: str = "utf-8",
                           end: str = "\n"):
    def build(data: Path) -> Path:
        lines = lines_of(data / name)
        out = data.parent / "submission.csv"
        out.write_bytes(("\n".join(transform(lines) if transform else lines) + end).encode(encoding))
        return out
    return build


def answers_from_sample(data: Path, name: str) -> Path:
    answers = data / "answers"
    answers.mkdir()
    (answers / "solution.csv").write_text((data / name).read_text())
    return answers


def cell(lines: list[str], row: int, column: int, value: str) -> list[str]:
    fields = lines[row].split(",")
    fields[column] = value
    return lines[:row] + [",".join(fields)] + lines[row + 1:]


HOUSE_FILE = "house_prices_file"
CASES = [
    # house-prices: the silent misreads and tracebacks of the issue, then more
    Case("house train cut mid-field", "house-prices", cut_mid_field("train.csv", 4), fit("house-prices"), 2,
         ("train.csv", "row 7", "cut short")),
    Case("house train cut mid-row", "house-prices", cut_mid_field("train.csv", 12), fit("house-prices"), 2,
         ("train.csv", "row 7", "fields")),
    Case("house test cut mid-row", "house-prices", cut_mid_field("test.csv", 10), fit("house-prices"), 2,
         ("test.csv", "row 3", "cut short")),
    Case("house fractional Id", "house-prices", set_cell("train.csv", 3, "Id", "10.5"), fit("house-prices"), 2,
         ("train.csv", "row 4", "Id='10.5'", "not an integer")),
    Case("house blank Id", "house-prices", set_cell("train.csv", 2, "Id", ""), fit("house-prices"), 2,
         ("train.csv", "row 3", "Id is blank")),
    Case("house duplicate Id", "house-prices", set_cell("train.csv", 2, "Id", "1"), fit("house-prices"), 2,
         ("train.csv", "row 3", "Id 1", "more than once")),
    Case("house SalePrice inf", "house-prices", set_cell("train.csv", 4, "SalePrice", "inf"), fit("house-prices"), 2,
         ("train.csv", "row 5", "Id 4", "SalePrice='inf'", "finite")),
    Case("house SalePrice blank", "house-prices", set_cell("train.csv", 1, "SalePrice", ""), fit("house-prices"), 2,
         ("train.csv", "row 2", "Id 1", "SalePrice is missing")),
    Case("house SalePrice negative", "house-prices", set_cell("train.csv", 6, "SalePrice", "-5"), fit("house-prices"), 2,
         ("train.csv", "row 7", "Id 6", "positive")),
    Case("house text in a numeric column", "house-prices", set_cell("test.csv", 2, "LotArea", "lots"), fit("house-prices"), 2,
         ("test.csv", "row 3", "Id 1462", "LotArea='lots'")),
    Case("house train without a feature column", "house-prices", drop_column("train.csv", "LotArea"), fit("house-prices"), 2,
         ("test.csv", "LotArea", "not in train.csv")),
    Case("house test without a feature column", "house-prices", drop_column("test.csv", "Street"), fit("house-prices"), 2,
         ("test.csv", "Street", "missing")),
    Case("house train without SalePrice", "house-prices", drop_column("train.csv", "SalePrice"), fit("house-prices"), 2,
         ("train.csv", "SalePrice", "missing column")),
    Case("house header-only train", "house-prices", header_only("train.csv"), fit("house-prices"), 2,
         ("train.csv", "no data rows")),
    Case("house semicolon train", "house-prices", semicolons("train.csv"), fit("house-prices"), 2,
         ("train.csv", "semicolons", "';'")),
    Case("house latin-1 train", "house-prices", latin1("train.csv", 3, "Street"), fit("house-prices"), 2,
         ("train.csv", "row 4", "not UTF-8", "latin-1")),
    Case("house empty test", "house-prices", lambda d: (d / "test.csv").write_text(""), fit("house-prices"), 2,
         ("test.csv", "empty")),
    Case("house missing test", "house-prices", remove("test.csv"), fit("house-prices"), 2, ("test.csv", "not found")),
    Case("house duplicated column", "house-prices", rewrite("test.csv", lambda ls: [ls[0].replace("Street", "LotArea")] + ls[1:]),
         fit("house-prices"), 2, ("test.csv", "'LotArea'", "more than once")),
    Case("house extra field in a row", "house-prices", replace_line("train.csv", 3, HOUSE_TRAIN[3] + ",7"), fit("house-prices"), 2,
         ("train.csv", "row 4", "8 fields")),
    Case("house sample lacks SalePrice", "house-prices", rewrite("sample_submission.csv", lambda ls: [l.split(",")[0] for l in ls]),
         run("house-prices"), 2, ("sample_submission.csv", "missing SalePrice")),
    Case("house missing sample on run", "house-prices", remove("sample_submission.csv"), run("house-prices"), 2,
         ("sample_submission.csv", "not found")),
    Case("house sample ids differ from test", "house-prices", set_cell("sample_submission.csv", 2, "Id", "9999"), fit("house-prices"), 2,
         ("test.csv", "Id 1462", "row 3", "sample_submission.csv")),

    # uberct
    Case("uberct dates in both orders", "uberct", set_cell("train.csv", 1, "Occurrence Local Date Time", "03/13/16 00:53"),
         fit("uberct"), 2, ("train.csv", "row 2", "'03/13/16 00:53'", "row 3", "Occurrence Local Date Time")),
    Case("uberct header-only train", "uberct", header_only("train.csv"), fit("uberct"), 2, ("train.csv", "no data rows")),
    Case("uberct most dates unreadable", "uberct",
         rewrite("train.csv", lambda ls: [ls[0]] + [l.replace("/16 ", "-2016 ") for l in ls[1:5]] + ls[5:]), fit("uberct"), 2,
         ("train.csv", "4 of 6 rows cannot be used", "bad_date 4", "first row 2")),
    Case("uberct train without a column", "uberct", drop_column("train.csv", "Cause"), fit("uberct"), 2,
         ("train.csv", "missing column(s) Cause")),
    Case("uberct semicolon sample", "uberct", semicolons("SampleSubmission.csv"), fit("uberct"), 2,
         ("SampleSubmission.csv", "semicolons")),
    Case("uberct malformed sample id", "uberct", replace_line("SampleSubmission.csv", 2, "2019-01-01 01:00:00 SBBBBBB,0"), fit("uberct"), 2,
         ("SampleSubmission.csv", "row 3", "SBBBBBB")),
    Case("uberct latin-1 train", "uberct", latin1("train.csv", 2, "Subcause", "D\u00e9bris"), fit("uberct"), 2,
         ("train.csv", "row 3", "not UTF-8")),
    Case("uberct sample with another prediction column", "uberct",
         rewrite("SampleSubmission.csv", lambda ls: [ls[0].replace("prediction", "target")] + ls[1:]), fit("uberct"), 2,
         ("SampleSubmission.csv", "missing prediction", "unexpected target")),
    Case("uberct missing shapefile", "uberct", remove("road_segments.zip"), fit("uberct"), 2, ("road_segments.shp",)),
    Case("uberct train cut short", "uberct", cut_mid_field("train.csv", 3), fit("uberct"), 2, ("train.csv", "row 7", "cut short")),

    # birdcall
    Case("birdcall sample missing a species", "birdcall",
         rewrite("SampleSubmission.csv", lambda ls: [",".join(l.split(",")[:-1]) for l in ls]), fit("birdcall"), 2,
         ("SampleSubmission.csv", "missing Cape Bunting")),
    Case("birdcall sample species reordered", "birdcall",
         rewrite("SampleSubmission.csv", lambda ls: [ls[0].replace("Black Cuckoo,Red-chested Cuckoo", "Red-chested Cuckoo,Black Cuckoo")] + ls[1:]),
         fit("birdcall"), 2, ("SampleSubmission.csv", "another order")),
    Case("birdcall unknown species", "birdcall", set_cell("Train.csv", 2, "common_name", "Dodo"), fit("birdcall"), 2,
         ("Train.csv", "row 3", "ID D4E5F6", "'Dodo'")),
    Case("birdcall blank train ID", "birdcall", set_cell("Train.csv", 1, "ID", ""), fit("birdcall"), 2, ("Train.csv", "row 2", "ID is blank")),
    Case("birdcall duplicate sample ID", "birdcall", rewrite("SampleSubmission.csv", lambda ls: ls + [ls[1]]), fit("birdcall"), 2,
         ("SampleSubmission.csv", "row 4", "K1L2M3", "more than once")),
    Case("birdcall most clips missing", "birdcall", lambda d: [p.unlink() for p in sorted((d / "Train").iterdir())[:2]], fit("birdcall"), 2,
         ("Train.csv", "2 of 3 rows cannot be used", "clip_missing 2")),
    Case("birdcall Test folder never unzipped", "birdcall", lambda d: [p.unlink() for p in (d / "Test").iterdir()], fit("birdcall"), 2,
         ("SampleSubmission.csv", "2 of 2 rows", "clip_missing", "ID K1L2M3")),
    Case("birdcall train without common_name", "birdcall", drop_column("Train.csv", "common_name"), fit("birdcall"), 2,
         ("Train.csv", "missing column(s) common_name")),

    # serengeti
    Case("serengeti submission_format lacks a label", "serengeti-test", drop_column("submission_format.csv", "zebra"), fit("serengeti"), 2,
         ("submission_format.csv", "missing zebra")),
    Case("serengeti label 2 prints as written", "serengeti", set_cell("train_labels.csv", 2, "zebra", "2"), fit("serengeti"), 2,
         ("train_labels.csv", "row 3", "SER_S1#B04#1#2", "zebra='2'")),
    Case("serengeti blank label", "serengeti", set_cell("train_labels.csv", 1, "lionmale", ""), fit("serengeti"), 2,
         ("train_labels.csv", "row 2", "lionmale=''")),
    Case("serengeti unlabelled sequence", "serengeti", rewrite("train_labels.csv", lambda ls: ls[:-1]), fit("serengeti"), 2,
         ("train_labels.csv", "SER_S2#C05#1#1")),
    Case("serengeti duplicated label row", "serengeti", rewrite("train_labels.csv", lambda ls: ls + [ls[1]]), fit("serengeti"), 2,
         ("train_labels.csv", "row 5", "more than once")),
    Case("serengeti metadata without file_name", "serengeti", drop_column("train_metadata.csv", "file_name"), fit("serengeti"), 2,
         ("train_metadata.csv", "file_name")),
    Case("serengeti latin-1 metadata", "serengeti", latin1("train_metadata.csv", 2, "datetime", "\u00e9t\u00e9"), fit("serengeti"), 2,
         ("train_metadata.csv", "row 3", "not UTF-8")),
    Case("serengeti test sequence not in the format", "serengeti-test",
         rewrite("test_metadata.csv", lambda ls: ls + ["SER_S9#A01#2#1,S9/A01/y.JPG,2011-01-01 10:00:00"]), fit("serengeti"), 2,
         ("test_metadata.csv", "SER_S9#A01#2#1", "submission_format.csv")),
    Case("serengeti run without the hidden files", "serengeti", lambda d: None, run("serengeti"), 2,
         ("submission_format.csv", "compete package serengeti")),

    # validate / score / submit
    Case("validate a semicolon submission", "house-prices", lambda d: None, ("validate", "house-prices", "FILE", "--data", "DATA"), 2,
         ("submission.csv", "semicolons"), submission_from_sample("sample_submission.csv", lambda ls: [l.replace(",", ";") for l in ls])),
    Case("validate a latin-1 submission", "birdcall", lambda d: None, ("validate", "birdcall", "FILE", "--data", "DATA"), 2,
         ("submission.csv", "row 3", "not UTF-8"),
         submission_from_sample("SampleSubmission.csv", lambda ls: cell(ls, 2, 0, "N\u00e94P5Q6"), encoding="latin-1")),
    Case("validate a submission cut short", "uberct", lambda d: None, ("validate", "uberct", "FILE", "--data", "DATA"), 2,
         ("submission.csv", "row 3", "1 of 2 fields"),
         submission_from_sample("SampleSubmission.csv", lambda ls: ls[:-1] + [ls[-1].split(",")[0]], end="")),
    Case("house train row short of a value", "house-prices", replace_line("train.csv", 2, "2,20,9600,Pave,5,181500"), fit("house-prices"), 2,
         ("train.csv", "row 3", "6 of 7 fields")),
    Case("validate a row short of a value", "serengeti-test", lambda d: None, ("validate", "serengeti", "FILE", "--data", "DATA"), 2,
         ("submission.csv", "row 2", "54 of 55 fields"),
         submission_from_sample("submission_format.csv", lambda ls: [ls[0], ls[1].rsplit(",", 1)[0]])),
    Case("validate an empty submission", "house-prices", lambda d: None, ("validate", "house-prices", "FILE", "--data", "DATA"), 1,
         ("submission.csv", "empty", "the header Id,SalePrice"), lambda data: _empty(data.parent / "submission.csv")),
    Case("validate a text value", "serengeti-test", lambda d: None, ("validate", "serengeti", "FILE", "--data", "DATA"), 1,
         ("submission.csv", "not_a_number", "SER_S9#A01#1#1/zebra='high'"),
         submission_from_sample("submission_format.csv", lambda ls: cell(ls, 1, 1 + CLASSES.index("zebra"), "high"))),
    Case("score a partial file", "house-prices", lambda d: None, ("score", "house-prices", "FILE", "--answers", "ANSWERS"), 1,
         ("submission.csv", "missing_ids", "1462"), submission_from_sample("sample_submission.csv", lambda ls: ls[:-1])),
    Case("score a blank value", "birdcall", lambda d: None, ("score", "birdcall", "FILE", "--answers", "ANSWERS"), 1,
         ("submission.csv", "non_finite", "K1L2M3/Cape Batis=''"),
         submission_from_sample("SampleSubmission.csv", lambda ls: cell(ls, 1, 1 + SPECIES.index("Cape Batis"), ""))),
    Case("score a text value", "uberct", lambda d: None, ("score", "uberct", "FILE", "--answers", "ANSWERS"), 1,
         ("submission.csv", "not_a_number", "SAAAAAA/prediction='yes'"),
         submission_from_sample("SampleSubmission.csv", lambda ls: cell(ls, 1, 1, "yes"))),
    Case("score against train.csv", "house-prices", lambda d: None, ("score", "house-prices", "FILE", "--answers", "DATA/train.csv"), 2,
         ("train.csv", "not the answers"), submission_from_sample("sample_submission.csv")),
    Case("score against the data folder", "house-prices", lambda d: (d / "answers").mkdir(),
         ("score", "house-prices", "FILE", "--answers", "DATA"), 2,
         ("train.csv", "not the answers"), submission_from_sample("sample_submission.csv")),
    Case("submit a file with a duplicate id", "house-prices", lambda d: None,
         ("submit", "house-prices", "FILE", "--data", "DATA", "-m", "x", "--dry-run"), 1,
         ("submission.csv", "not submitted", "duplicate_ids", "1461"),
         submission_from_sample("sample_submission.csv", lambda ls: [ls[0], ls[1], ls[1]])),
    Case("submit a semicolon file", "birdcall", lambda d: None, ("submit", "birdcall", "FILE", "--data", "DATA", "-m", "x", "--dry-run"), 2,
         ("submission.csv", "semicolons"), submission_from_sample("SampleSubmission.csv", lambda ls: [l.replace(",", ";") for l in ls])),
    Case("runtime test a bundle that is not there", "serengeti-test", lambda d: None,
         ("runtime", "test", "FILE", "--data", "DATA"), 2, ("missing.zip", "not found"), lambda data: data.parent / "missing.zip"),
    Case("runtime test a file that is not a zip", "serengeti-test", lambda d: None,
         ("runtime", "test", "FILE", "--data", "DATA"), 2, ("submission.zip", "not a zip file"),
         lambda data: _write(data.parent / "submission.zip", b"<html>502 Bad Gateway</html>")),
    Case("package a folder that is not a run", "serengeti", lambda d: None,
         ("package", "serengeti", "--run-dir", "DATA", "--out", "OUT"), 2, ("model", "compete fit serengeti")),
    Case("predict with another competition's run", "house-prices", lambda d: _foreign_run(d.parent / "run"),
         ("predict", "house-prices", "--data", "DATA", "--run-dir", "RUN", "--out", "OUT"), 2, ("run", "uberct", "house-prices")),
]


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _empty(path: Path) -> Path:
    path.write_text("")
    return path


def _foreign_run(run_dir: Path) -> None:
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"competition": "uberct", "data": "/elsewhere"}\n')
    (run_dir / "model.pkl").write_bytes(b"not a house-prices model")


def test_the_matrix_covers_at_least_forty_kinds_across_every_competition_and_command():
    assert len({case.kind for case in CASES}) == len(CASES) >= 40
    assert {case.data.split("-test")[0] for case in CASES} == {"house-prices", "uberct", "birdcall", "serengeti"}
    assert {case.command[0] for case in CASES} >= {"fit", "run", "validate", "score", "submit", "predict", "runtime", "package"}


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in sorted(root.rglob("*"))}


@pytest.fixture
def sandbox(tmp_path, monkeypatch, segments_zip):
    """A work folder, a temp dir and a cache of the test's own, so leftovers show."""
    for name in ("work", "tmp", "cache"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("COMPETE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.chdir(tmp_path / "work")
    return tmp_path


def build(kind: str, data: Path, segments_zip: bytes) -> None:
    if kind == "uberct":
        write_lines(data / "train.csv", UBER_TRAIN)
        write_lines(data / "SampleSubmission.csv", UBER_SAMPLE)
        (data / "road_segments.zip").write_bytes(segments_zip)
    else:
        BUILDERS[kind](data)


def invoke(words: list[str]):
    return CliRunner().invoke(cli.main, words, catch_exceptions=True)


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
def test_bad_input(case: Case, sandbox: Path, segments_zip: bytes):
    data = sandbox / "data"
    build(case.data, data, segments_zip)
    case.mutate(data)
    file = case.file(data) if case.file else None
    answers = answers_from_sample(data, _sample_name(data)) if "ANSWERS" in case.command else None
    before = snapshot(sandbox)
    fill = {"DATA": str(data), "FILE": str(file), "ANSWERS": str(answers), "RUN": str(sandbox / "run"),
            "OUT": str(sandbox / "out.csv")}
    words = [fill.get(word, word.replace("DATA", str(data))) for word in case.command]
    result = invoke(words)

    output = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), output
    assert "Traceback" not in output
    assert result.exit_code == case.code, output
    if case.code == 2:
        message = result.stderr.strip()
        assert message.startswith("error: ") and "\n" not in message, output
    else:
        message = result.stdout.strip()
        assert message.splitlines()[0].startswith(str(file)), output
    if os.environ.get("SHOW_MESSAGES"):
        print(f"\n[{case.kind}] {message}")
    for needle in case.says:
        assert needle in message, f"{needle!r} not in: {message}"
    assert snapshot(sandbox) == before, "the command left something behind"


def _sample_name(data: Path) -> str:
    for name in ("sample_submission.csv", "SampleSubmission.csv", "submission_format.csv"):
        if (data / name).exists():
            return name
    raise AssertionError(f"no sample in {data}")


# --- the same contract from a real process ----------------------------------------------

@pytest.mark.parametrize("kind", ["house latin-1 train", "serengeti label 2 prints as written"])
def test_a_real_process_prints_one_line_and_leaves_nothing(compete, kind, tmp_path, segments_zip):
    case = next(case for case in CASES if case.kind == kind)
    data, work = tmp_path / "data", tmp_path / "work"
    build(case.data, data, segments_zip)
    case.mutate(data)
    work.mkdir()
    before = snapshot(tmp_path)
    result = compete(*[str(data) if word == "DATA" else word for word in case.command], cwd=work, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    assert result.stderr.count("\n") == 1 and all(needle in result.stderr for needle in case.says), result.stderr
    assert snapshot(tmp_path) == before


# --- unexpected errors: one line naming the stage, the traceback kept --------------------

def test_an_unexpected_error_in_load_is_one_line_with_the_traceback_kept(sandbox, segments_zip, monkeypatch):
    from competitions.house_prices import HousePrices

    def broken_load(self, data_dir):
        raise KeyError("GarageArea")
    monkeypatch.setattr(HousePrices, "load", broken_load)
    data = sandbox / "data"
    build("house-prices", data, segments_zip)
    result = invoke(["fit", "house-prices", "--data", str(data), "--quiet"])
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"error: load failed on {data}: KeyError: 'GarageArea'; traceback in ")
    kept = Path(message.rsplit("traceback in ", 1)[1])
    assert kept.is_file() and kept.is_relative_to(sandbox / "cache")
    assert "Traceback" in kept.read_text() and "broken_load" in kept.read_text()
    assert not (sandbox / "work" / "runs").exists()  # the run it had started is gone


def test_an_unexpected_error_in_a_plain_command_is_one_line(sandbox, segments_zip, monkeypatch):
    from competitions.house_prices import HousePrices

    def broken_validate(self, submission, data_dir):
        raise ZeroDivisionError("division by zero")
    monkeypatch.setattr(HousePrices, "validate", broken_validate)
    data = sandbox / "data"
    build("house-prices", data, segments_zip)
    result = invoke(["validate", "house-prices", str(data / "sample_submission.csv"), "--data", str(data)])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: validate failed unexpectedly: ZeroDivisionError")
    assert "Traceback" in (sandbox / "cache" / "logs" / "last-error.txt").read_text()


# --- a reused run directory: resumed with the same settings, else refused ---------------

def test_a_run_directory_of_other_settings_is_refused_untouched(sandbox, segments_zip):
    data, run_dir = sandbox / "data", sandbox / "run"
    build("house-prices", data, segments_zip)
    run_dir.mkdir()
    from dataclasses import asdict

    from competitions import REGISTRY
    settings = {"competition": "house-prices", "data": str(data.resolve()), "options": asdict(REGISTRY.competition("house-prices").options(quiet=True))}
    (run_dir / "config.json").write_text(json.dumps(settings))
    (run_dir / "metrics.json").write_text('{"cv_score": 0.12}\n')
    before = snapshot(sandbox)
    result = invoke(["fit", "house-prices", "--data", str(data), "--run-dir", str(run_dir), "--seed", "1", "--quiet"])
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert message.startswith(f"error: {run_dir}: holds a run with other settings (options.seed 0 -> 1)") and "new --run-dir" in message
    assert snapshot(sandbox) == before


def test_a_folder_that_is_not_a_run_is_refused(sandbox, segments_zip):
    data, run_dir = sandbox / "data", sandbox / "notes"
    build("house-prices", data, segments_zip)
    run_dir.mkdir()
    (run_dir / "mine.txt").write_text("keep me\n")
    result = invoke(["fit", "house-prices", "--data", str(data), "--run-dir", str(run_dir), "--quiet"])
    assert result.exit_code == 2 and "not a run directory" in result.stderr and "mine.txt" not in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == ["mine.txt"]


def test_the_same_settings_resume_and_drop_the_old_record(tmp_path):
    from common import runs
    settings = {"competition": "house-prices", "data": "/d", "options": {"seed": 0, "fast": True, "quiet": False}}
    run_dir = tmp_path / "run"
    assert runs.open_run_dir(run_dir, settings) is True
    (run_dir / "config.json").write_text(json.dumps(settings))
    (run_dir / "metrics.json").write_text('{"cv_score": 0.5, "submission": "old.csv"}')
    (run_dir / "checkpoint.pth").write_bytes(b"weights")
    assert runs.open_run_dir(run_dir, {**settings, "options": {**settings["options"], "quiet": True}}) is False  # quiet or not: the same run
    assert not (run_dir / "metrics.json").exists() and (run_dir / "checkpoint.pth").exists()


# --- the shared checks as plain functions -----------------------------------------------

def test_day_month_order_is_decided_from_the_data(tmp_path, caplog):
    import pandas as pd

    from common import io
    day_first = pd.Series(["01/02/16 10:00", "13/02/16 11:00", "05/03/16 12:00"])
    times, order, bad = io.day_month_times(day_first, "%d/%m/%y %H:%M", "train.csv", "when")
    assert order == "platform" and list(times.dt.month) == [2, 2, 3] and not bad.any()
    month_first = pd.Series(["03/01/16 00:53", "03/13/16 08:00", "12/31/16 23:00", "garbage"])
    with caplog.at_level("WARNING", logger="compete"):
        times, order, bad = io.day_month_times(month_first, "%d/%m/%y %H:%M", "train.csv", "when")
    assert order == "swapped" and list(times.dt.month[:3]) == [3, 3, 12] and list(times.dt.day[:3]) == [1, 13, 31]
    assert list(bad) == [False, False, False, True]  # counted by the caller, not silently read
    assert "train.csv: when is in %m/%d/%y %H:%M order" in caplog.text and "row 3: '03/13/16 08:00'" in caplog.text
    ambiguous = pd.Series(["01/02/16 10:00", "03/04/16 10:00"])
    assert io.day_month_times(ambiguous, "%d/%m/%y %H:%M", "t.csv", "when")[1] == "platform"  # undecided: the platform's


def test_unusable_rows_are_counted_by_kind_and_most_fail(tmp_path):
    import numpy as np
    import pandas as pd

    from common import io
    ids = pd.Series(["a", "b", "c", "d"], name="EventId")
    with io.counting_unusable() as tally:
        counts = io.unusable_rows("train.csv", 4, {"bad_date": np.array([0, 1, 0, 0]), "no_segment": np.array([0, 0, 0, 0])}, ids)
    assert counts == {"bad_date": 1} and tally == {"train.csv": {"bad_date": 1}}
    with pytest.raises(io.InputError, match=r"train.csv: 3 of 4 rows cannot be used: bad_date 2 \(first row 2, EventId a\), "
                                            r"no_segment 1 \(first row 5, EventId d\): most of the file is unusable"):
        io.unusable_rows("train.csv", 4, {"bad_date": np.array([1, 1, 0, 0]), "no_segment": np.array([0, 0, 0, 1])}, ids)


def test_integer_ids_stay_integers(tmp_path):
    import pandas as pd

    from common import io
    frame = pd.DataFrame({"Id": [" 7", "12", "+3"]})
    assert io.integer_ids(frame, "Id", "x.csv").tolist() == [7, 12, 3]
    for value in ("10.5", "1e3", "7a", "10.0"):
        with pytest.raises(io.InputError, match=rf"x.csv: row 4: Id='{value}' is not an integer id"):
            io.integer_ids(pd.DataFrame({"Id": ["1", "2", value]}), "Id", "x.csv")


def test_cache_clear_removes_the_cache_and_compete_temp_folders(sandbox):
    (sandbox / "cache" / "birdcall" / "logmel").mkdir(parents=True)
    (sandbox / "cache" / "birdcall" / "logmel" / "a.npy").write_bytes(b"x" * 1000)
    (sandbox / "tmp" / "compete-runtime-abc").mkdir()
    (sandbox / "tmp" / "compete-runtime-abc" / "main.py").write_text("print()\n")
    (sandbox / "tmp" / "someone-else").mkdir()
    result = invoke(["cache", "clear"])
    assert result.exit_code == 0, result.output
    assert "2 item(s)" in result.stdout and str(sandbox / "cache" / "birdcall") in result.stdout
    assert list((sandbox / "cache").iterdir()) == [] and [p.name for p in (sandbox / "tmp").iterdir()] == ["someone-else"]


def test_the_zindi_credentials_help_is_not_redacted(monkeypatch, tmp_path):
    from common.platforms import zindi
    from common.platforms.errors import CredentialsError
    monkeypatch.delenv("ZINDI_USERNAME", raising=False)
    monkeypatch.delenv("ZINDI_PASSWORD", raising=False)
    monkeypatch.setenv("ZINDI_CONFIG_DIR", str(tmp_path))
    with pytest.raises(CredentialsError) as raised:
        zindi.credentials()
    assert '{"username": ..., "password": ...}' in str(raised.value) and "***" not in str(raised.value)


def test_a_failed_fetch_from_a_bad_zip_leaves_no_folder(sandbox):
    bad = sandbox / "house-prices.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    out = sandbox / "data" / "house-prices"
    result = invoke(["data", "fetch", "house-prices", "--out", str(out), "--from", str(bad)])
    assert result.exit_code == 2 and result.stderr.strip() == f"error: {bad}: not a zip file"
    assert not out.exists() and not out.parent.exists()


def test_a_blank_month_in_test_csv_is_missing_not_a_crash(house_data):
    from competitions.house_prices import data as D
    from competitions.house_prices import features as F
    data = D.load(house_data)
    test = data.test.copy()
    test.loc[3, "MoSold"] = np.nan
    features = F.features(test)
    assert features["MonthSold"].isna().tolist()[:5] == [False, False, False, True, False]
    assert features.loc[0, "MonthSold"] == f"M{int(data.test.loc[0, 'MoSold'])}"


def test_problems_with_typed_values_print_them_as_written():
    import pandas as pd

    from common.submission import SubmissionFormat, validate
    sample = pd.DataFrame({"Id": ["1", "2"], "label": ["0", "1"]})
    labels = SubmissionFormat("s.csv", "Id", domain="label", labels=("0", "1"))
    typed = pd.DataFrame({"Id": ["1", "2"], "label": np.array([2, 1], dtype=np.int64)})
    text = " ".join(map(str, validate(typed, sample, labels)))
    assert "1/label='2'" in text and "np." not in text
    numbers = SubmissionFormat("s.csv", "Id", domain="probability")
    text = " ".join(map(str, validate(pd.DataFrame({"Id": ["1", "2"], "label": [np.float64("nan"), 1.5]}), sample, numbers)))
    assert "1/label='nan'" in text and "2/label=1.5" in text and "np." not in text
