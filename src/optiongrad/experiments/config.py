"""Experiment configurations: frozen dataclasses whose fields carry their own command-line
flag, help text and range check, so the parser's defaults are the dataclass defaults and every
flag is checked (by `validate`) before any work starts."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Optional, Sequence

from optiongrad._src import checks

SEED_MAX = 2**32 - 1


def setting(default, help: str, *, flag: Optional[str] = None,
            check: Optional[Callable[[Any, str], Any]] = None,
            choices: Optional[Sequence[str]] = None, invert: bool = False,
            parse: Optional[Callable[[str], Any]] = None):
    """A config field. `flag`: its command-line flag (None: not on the command line); `check`:
    `check(value, name)` raises `ValueError` naming `name`; `choices`: allowed strings;
    `invert`: a bool field set to False by a store-true flag (e.g. `--options-only`);
    `parse`: how the flag's text becomes a value (default: by the default's type)."""
    return dataclasses.field(default=default, metadata={
        "help": help, "flag": flag, "check": check, "choices": choices, "invert": invert,
        "parse": parse})


# -- checks ---------------------------------------------------------------------------------------


def real(low=None, high=None, *, low_open=False, high_open=False, optional=False):
    """A finite number in the given range."""
    def check(value, name):
        if isinstance(value, bool):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        checks.number(value, name, low=low, high=high, low_open=low_open,
                      high_open=high_open, allow_none=optional)
    return check


def whole(minimum=1, maximum=None, *, optional=False):
    """An integer in `[minimum, maximum]`."""
    def check(value, name):
        checks.integer(value, name, minimum=minimum, maximum=maximum, allow_none=optional)
    return check


def flag(value: bool, name: str) -> None:
    """A bool (not a number that happens to be truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}: expected True or False, got {value!r}")


def cell(value, name: str) -> None:
    """A grid cell `(row, col)` of non-negative integers."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"{name}: expected (row, col), got {value!r}")
    for v in value:
        checks.integer(v, name, minimum=0)


def parse_cell(text: str) -> tuple[int, int]:
    """`"ROW,COL"` → `(row, col)`."""
    try:
        row, col = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (e.g. 11,11), got {text!r}") \
            from None
    return row, col


# -- validation and the command line --------------------------------------------------------------


def validate(config) -> None:
    """Raise `ValueError` naming the first field that is out of range."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        choices = field.metadata.get("choices")
        if choices is not None:
            checks.choice(value, field.name, choices)
        check = field.metadata.get("check")
        if check is not None:
            check(value, field.name)


def flag_names(cls) -> dict[str, str]:
    """`{field name: command-line flag}` of a config class."""
    return {f.name: f.metadata["flag"] for f in dataclasses.fields(cls)
            if f.metadata.get("flag")}


def add_arguments(parser: argparse.ArgumentParser, cls, *, skip: Sequence[str] = ()) -> None:
    """One argument per field with a flag (except `skip`); the help shows the field's default.
    A flag the user does not give is absent from the parsed namespace (`argparse.SUPPRESS`),
    so `from_args` knows which flags were given."""
    for field in dataclasses.fields(cls):
        name = field.metadata.get("flag")
        if not name or field.name in skip:
            continue
        kwargs = dict(dest=field.name, default=argparse.SUPPRESS,
                      help=f"{field.metadata['help']} (default: {_shown(field)})")
        if isinstance(field.default, bool):
            kwargs.update(action="store_true")
        else:
            if not field.metadata.get("choices"):
                kwargs["metavar"] = name.lstrip("-").upper().replace("-", "_")
            kwargs.update(type=field.metadata.get("parse") or _parser_type(field),
                          choices=field.metadata.get("choices"))
        parser.add_argument(name, **kwargs)


def _shown(field) -> str:
    if isinstance(field.default, bool):
        return "off"
    if isinstance(field.default, tuple):
        return ",".join(str(v) for v in field.default)
    return "none" if field.default is None else str(field.default)


def _parser_type(field):
    kind = type(field.default)
    if kind is float or field.type in ("float", "Optional[float]"):
        return parse_number
    if kind is int or field.type in ("int", "Optional[int]"):
        return parse_integer
    return str


def parse_number(text: str) -> float:
    """A flag's text as a float (NaN and inf parse; `validate` refuses them)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def parse_integer(text: str) -> int:
    """A flag's text as an int."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def from_args(cls, args: argparse.Namespace, **overrides):
    """The config of parsed `args` (flags not given keep the field defaults), validated; a
    `ValueError` names the flag. Flags given together that the class lists in its
    `CONFLICTS` (pairs of field names) are refused whatever their values."""
    given = [f.name for f in dataclasses.fields(cls) if hasattr(args, f.name)]
    for a, b in getattr(cls, "CONFLICTS", ()):
        if a in given and b in given:
            flags = flag_names(cls)
            raise ValueError(f"{flags[b]}: conflicts with {flags[a]}; give one")
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in overrides:
            values[field.name] = overrides[field.name]
        elif field.name in given:
            value = getattr(args, field.name)
            values[field.name] = (not value) if field.metadata.get("invert") else value
    config = cls(**values)
    try:
        config.validate()
    except ValueError as err:
        raise ValueError(with_flag(str(err), cls)) from None
    return config


def with_flag(message: str, cls) -> str:
    """`"field: …"` → `"--flag: …"` for a config class's fields."""
    name, sep, rest = message.partition(": ")
    flags = flag_names(cls)
    return f"{flags[name]}: {rest}" if sep and name in flags else message

