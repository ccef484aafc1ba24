"""Run options: declared types, parsed from --set text and TOML, unknown keys named."""
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from common import io
from common.options import Options, describe, make_options, option, parse_assignments, read_toml


@dataclass
class Knobs(Options):
    epochs: int | None = option(None, "epochs; None: by --fast")
    lr: float = option(1e-3, "learning rate")
    backbone: Path | None = option(None, "weights to start from")
    refit: bool = option(True, "train again on everything")
    rule: Literal["rate", "threshold"] = option("rate", "how to flag")
    name: str = option("x", "a label")


def test_text_is_parsed_to_each_declared_type():
    knobs = make_options(Knobs, parse_assignments(["epochs=3", "lr=0.5", "backbone=weights/r50.pth", "refit=false",
                                            "rule=threshold", "name=7", "seed=4", "fast=yes"]))
    assert knobs == Knobs(epochs=3, lr=0.5, backbone=Path("weights/r50.pth"), refit=False, rule="threshold",
                          name="7", seed=4, fast=True)
    assert make_options(Knobs, {"epochs": "none"}).epochs is None
    assert make_options(Knobs, {"lr": "2"}).lr == 2.0 and isinstance(make_options(Knobs, {"lr": "2"}).lr, float)


def test_a_value_of_the_wrong_type_names_the_option():
    with pytest.raises(io.InputError, match=r"^knobs: epochs: 'three' is not an integer$"):
        make_options(Knobs, {"epochs": "three"}, source="knobs")
    with pytest.raises(io.InputError, match=r"refit: 'maybe' is not a boolean"):
        make_options(Knobs, {"refit": "maybe"})
    with pytest.raises(io.InputError, match=r"rule: 'top' is not one of 'rate', 'threshold'"):
        make_options(Knobs, {"rule": "top"})
    with pytest.raises(io.InputError, match=r"lr: True is not a number"):
        make_options(Knobs, {"lr": True})  # TOML's own types are checked too


def test_an_unknown_key_lists_the_known_ones():
    with pytest.raises(io.InputError) as raised:
        make_options(Knobs, {"epoch": "1"}, source="demo")
    assert str(raised.value) == ("demo: unknown option 'epoch'; known: seed, fast, quiet, epochs, lr, backbone, "
                                 "refit, rule, name")


def test_assignments_need_an_equals_sign():
    assert parse_assignments(["path=a=b"]) == {"path": "a=b"}
    with pytest.raises(io.InputError, match="expected KEY=VALUE"):
        parse_assignments(["epochs"])


def test_toml_values_keep_their_types_and_bad_toml_is_one_line(tmp_path):
    good = tmp_path / "run.toml"
    good.write_text('epochs = 2\nlr = 0.01\nbackbone = "w.pth"\nrefit = false\n')
    assert make_options(Knobs, read_toml(good)) == Knobs(epochs=2, lr=0.01, backbone=Path("w.pth"), refit=False)
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 2\n")
    with pytest.raises(io.InputError, match=rf"^{bad}: not readable as TOML"):
        read_toml(bad)
    with pytest.raises(io.InputError, match="file not found"):
        read_toml(tmp_path / "absent.toml")


def test_describe_gives_name_type_default_and_doc():
    rows = {row.name: row for row in describe(Knobs)}
    assert (rows["epochs"].type, rows["epochs"].default, rows["epochs"].doc) == ("int | None", None, "epochs; None: by --fast")
    assert rows["rule"].type == "'rate' | 'threshold'"
    assert rows["backbone"].type == "Path | None" and rows["seed"].default == 0
