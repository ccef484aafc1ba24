"""Run options: each competition declares a dataclass of every knob a run takes.

A field is typed, has a default, and carries a one-line doc in its metadata, written
with `option(default, "doc")`, and the range its values must keep, when it has one
(`option(5, "folds", minimum=2)`) or the values it takes (`choices=("a", "b")`): checked
whenever the options are made, so a bad value is one line before any data is read, never
an error deep inside a library. The same declaration says where `compete tune` searches
(`search=(1e-4, 1e-2), log=True`: a range inside the allowed one; choices are searched as
they are): `search_space` reads it. `compete options COMP` prints them; `--set KEY=VALUE`
and `--config FILE.toml` set them, parsed to the declared type; the resolved options
land in the run's config.json.

Every competition's options subclass `Options`, so `seed`, `fast` and `quiet` (the
`--seed`, `--fast` and `--quiet` flags) reach `fit` the same way as the competition's
own knobs. A knob whose default depends on `--fast` is `X | None = None`, with the
doc saying what None means.
"""
from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, Literal

from common import io

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", ""}


_LIMITS = {"minimum": (">=", lambda value, limit: value >= limit), "above": (">", lambda value, limit: value > limit),
           "below": ("<", lambda value, limit: value < limit), "maximum": ("<=", lambda value, limit: value <= limit)}


def option(default: Any, doc: str, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None, below: float | None = None, choices: tuple | None = None,
           search: tuple[float, float] | None = None, log: bool = False) -> Any:
    """A dataclass field with its default, its one-line doc and its range: `minimum` and
    `maximum` inclusive, `above` and `below` exclusive, or `choices`, the values it may
    take (None, for an `X | None` knob, is always allowed: it means "decided for you").

    `search` is the (low, high) range `compete tune` samples a number from (on a log
    scale with `log`); it must lie inside the allowed range. An option with `choices` (or
    a Literal type) is searched over them; a bool over both values only when it declares
    `choices=(False, True)`. An option with neither is not searched unless `--search` says."""
    limits = {name: value for name, value in
              (("minimum", minimum), ("maximum", maximum), ("above", above), ("below", below)) if value is not None}
    if search is not None:
        low, high = search
        if not low < high or not all(test(bound, limits[name]) for bound in (low, high)
                                     for name, (_, test) in _LIMITS.items() if name in limits):
            raise ValueError(f"option {doc!r}: search range {low}..{high} is empty or outside its allowed range")
        if log and low <= 0:
            raise ValueError(f"option {doc!r}: a log-scale search range must be above 0, not {low}..{high}")
    if choices is not None and default is not None and default not in choices:
        raise ValueError(f"option {doc!r}: default {default!r} is not one of its choices {choices!r}")
    metadata = {"doc": doc, **limits, **({"choices": tuple(choices)} if choices is not None else {}),
                **({"search": (search[0], search[1]), "log": log} if search is not None else {})}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def limits(item: dataclasses.Field) -> str:
    """A field's range as written in messages and `compete options`, e.g. ">= 2", or ""."""
    if "choices" in item.metadata:
        return "one of " + ", ".join(map(repr, item.metadata["choices"]))
    return " and ".join(f"{sign} {item.metadata[name]:g}" for name, (sign, _) in _LIMITS.items() if name in item.metadata)


def searched(item: dataclasses.Field) -> str:
    """Where `compete tune` searches a field, as `compete options` prints it, or ""."""
    if "search" not in item.metadata:
        return ""
    low, high = item.metadata["search"]
    return f"search {low:g}..{high:g}{' log' if item.metadata.get('log') else ''}"


def check_ranges(options) -> None:
    """Every field inside its declared range, else an InputError naming the first that is not."""
    for item in dataclasses.fields(options):
        value = getattr(options, item.name)
        if value is not None and "choices" in item.metadata and value not in item.metadata["choices"]:
            raise io.InputError(f"{item.name}: {value!r} is not allowed; it must be {limits(item)}")
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not all(test(value, item.metadata[name]) for name, (_, test) in _LIMITS.items() if name in item.metadata):
            raise io.InputError(f"{item.name}: {value!r} is out of range; it must be {limits(item)}")


@dataclasses.dataclass
class Options:
    """What every run takes; a competition's options add its own knobs."""

    seed: int = option(0, "random seed: same seed, same data, same submission bytes")
    fast: bool = option(False, "a quick, smaller run for smoke tests and iteration")
    quiet: bool = option(False, "no progress or log on the terminal (the run's log.txt still has it)")

    def __post_init__(self):
        check_ranges(self)


@dataclasses.dataclass(frozen=True)
class Described:
    name: str
    type: str
    default: Any
    doc: str


def describe(options: type) -> list[Described]:
    """Name, type, default and doc of every field of an options class."""
    hints = typing.get_type_hints(options)
    rows = []
    for item in dataclasses.fields(options):
        default = item.default if item.default is not dataclasses.MISSING else item.default_factory()
        doc = item.metadata.get("doc", "")
        notes = "; ".join(note for note in (limits(item), searched(item)) if note)
        rows.append(Described(item.name, type_name(hints[item.name]), default, f"{doc} ({notes})" if notes else doc))
    return rows


def type_name(annotation) -> str:
    if typing.get_origin(annotation) is Literal:
        return " | ".join(repr(choice) for choice in typing.get_args(annotation))
    if _is_union(annotation):
        return " | ".join(type_name(arm) for arm in typing.get_args(annotation))
    if annotation is type(None):
        return "None"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def make_options(options: type, given: dict[str, Any] | None = None, source: str = "--set") -> Any:
    """An instance of `options` with `given` applied (strings are parsed to each field's
    type); an unknown key or a value of the wrong type is an InputError naming it."""
    given = dict(given or {})
    hints = typing.get_type_hints(options)
    known = [item.name for item in dataclasses.fields(options)]
    unknown = [key for key in given if key not in known]
    if unknown:
        raise io.InputError(f"{source}: unknown option {unknown[0]!r}; known: {', '.join(known)}")
    values = {key: convert(value, hints[key], f"{source}: {key}") for key, value in given.items()}
    try:
        return options(**values)
    except io.InputError as error:  # a value out of its declared range
        raise io.InputError(f"{source}: {error}") from None


def parse_assignments(assignments: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`["epochs=1", "backbone=weights.pth"]` -> {"epochs": "1", "backbone": "weights.pth"}."""
    values = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key.strip():
            raise io.InputError(f"--set {assignment!r}: expected KEY=VALUE")
        values[key.strip()] = value
    return values


def read_toml(path: Path) -> dict[str, Any]:
    """The options in a TOML file: its top-level keys, e.g. `epochs = 1`."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            loaded = tomllib.load(handle)
    except FileNotFoundError:
        raise io.InputError(f"{path}: file not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise io.InputError(f"{path}: not readable as TOML ({error})") from None
    return loaded


def convert(value: Any, annotation, name: str) -> Any:
    """`value` as the declared type: strings are parsed, TOML's own types are checked."""
    if _is_union(annotation):
        arms = typing.get_args(annotation)
        if type(None) in arms and (value is None or (isinstance(value, str) and value.strip().lower() in _NONE)):
            return None
        errors = []
        for arm in (arm for arm in arms if arm is not type(None)):
            try:
                return convert(value, arm, name)
            except io.InputError as error:
                errors.append(error)
        raise errors[0]
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        if value in choices:
            return value
        raise io.InputError(f"{name}: {value!r} is not one of {', '.join(map(repr, choices))}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise io.InputError(f"{name}: {value!r} is not a boolean (true or false)")
    if annotation in (int, float):
        taken = (int,) if annotation is int else (int, float)
        if isinstance(value, taken) and not isinstance(value, bool):
            return annotation(value)
        if isinstance(value, str):
            try:
                return annotation(value.strip())
            except ValueError:
                pass
        raise io.InputError(f"{name}: {value!r} is not {'an integer' if annotation is int else 'a number'}")
    if annotation is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value).expanduser()
        raise io.InputError(f"{name}: {value!r} is not a path")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise io.InputError(f"{name}: {value!r} is not a string")
    raise TypeError(f"{name}: options of type {type_name(annotation)} are not supported")


def _is_union(annotation) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


@dataclasses.dataclass(frozen=True)
class Dimension:
    """Where `compete tune` searches one option: a number in [low, high] (an integer for
    an int option, on a log scale with `log`), or one of `choices`."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None

    def text(self) -> str:
        """As `--search` writes it: `lr=0.001..0.1` or `rule=rate,threshold`."""
        if self.choices is not None:
            return f"{self.name}={','.join(map(str, self.choices))}"
        return f"{self.name}={self.low:g}..{self.high:g}{' (log)' if self.log else ''}"


def search_space(options: type, overrides: dict[str, str] | None = None) -> list[Dimension]:
    """The options `compete tune` searches: every field that declares a search range or
    choices (a Literal type declares its choices), with `overrides` ({KEY: "LOW..HIGH"} or
    {KEY: "A,B,C"}, from `--search`) replacing or adding to them. Each override is parsed
    to the field's type and must lie inside the field's allowed range."""
    overrides = dict(overrides or {})
    hints = typing.get_type_hints(options)
    fields = {item.name: item for item in dataclasses.fields(options)}
    unknown = [key for key in overrides if key not in fields]
    if unknown:
        raise io.InputError(f"--search: unknown option {unknown[0]!r}; known: {', '.join(fields)}")
    space = []
    for name, item in fields.items():
        annotation = _without_none(hints[name])
        if name in overrides:
            space.append(_parsed(item, annotation, overrides[name]))
        elif "search" in item.metadata:
            low, high = item.metadata["search"]
            space.append(Dimension(name, low, high, log=item.metadata.get("log", False), integer=annotation is int))
        elif "choices" in item.metadata:
            space.append(Dimension(name, choices=item.metadata["choices"]))
        elif typing.get_origin(annotation) is Literal:
            space.append(Dimension(name, choices=typing.get_args(annotation)))
    return space


def _parsed(item: dataclasses.Field, annotation, text: str) -> Dimension:
    source = f"--search {item.name}"
    low, dots, high = text.partition("..")
    if dots:
        if annotation not in (int, float):
            raise io.InputError(f"{source}: LOW..HIGH is for numbers; {item.name} is {type_name(annotation)}: give A,B,C")
        bounds = [convert(value, annotation, source) for value in (low, high)]
        for bound in bounds:
            if not all(test(bound, item.metadata[name]) for name, (_, test) in _LIMITS.items() if name in item.metadata):
                raise io.InputError(f"{source}: {bound!r} is out of range; it must be {limits(item)}")
        if not bounds[0] < bounds[1]:
            raise io.InputError(f"{source}: {text!r} is an empty range; write LOW..HIGH with LOW < HIGH")
        declared_log = item.metadata.get("log", False)
        return Dimension(item.name, bounds[0], bounds[1], log=declared_log and bounds[0] > 0, integer=annotation is int)
    choices = tuple(convert(value.strip(), annotation, source) for value in text.split(","))
    allowed = item.metadata.get("choices")
    outside = [choice for choice in choices if allowed is not None and choice not in allowed]
    if outside:
        raise io.InputError(f"{source}: {outside[0]!r} is not allowed; it must be {limits(item)}")
    return Dimension(item.name, choices=choices)


def _without_none(annotation):
    """`int | None` -> int: a searched knob takes a value, never "decided for you"."""
    if _is_union(annotation):
        arms = [arm for arm in typing.get_args(annotation) if arm is not type(None)]
        if len(arms) == 1:
            return arms[0]
    return annotation
