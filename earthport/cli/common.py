"""Argument types and shared options of the command line."""

from __future__ import annotations

import argparse
import json
import math

import yaml

from earthport.config import MS_MODES

QUIET = argparse.ArgumentParser(add_help=False)
QUIET.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
OVERWRITE = argparse.ArgumentParser(add_help=False)
OVERWRITE.add_argument("--overwrite", action="store_true",
                       help="replace an earlier output of earthport's (never anything else)")  # fmt: skip


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, steps, batch sizes, years)."""
    return _number(text, int, 1, "an integer >= 1")


def count(text: str) -> int:
    """An integer >= 0 (repeats, warm-up steps)."""
    return _number(text, int, 0, "an integer >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, seconds, degrees)."""
    value = _number(text, float, 0, "a number > 0")
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number > 0")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _number(text, float, 0, "a number in [0, 1]")
    if value > 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1]")
    return value


def _number(text: str, kind: type, least: float, expected: str):  # noqa: ANN202
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {expected}") from None
    if not math.isfinite(value) or value < least:
        raise argparse.ArgumentTypeError(f"{text!r} is not {expected}")
    return value


def grid(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid {text!r} is not HxW, e.g. 32x64 or 721x1440") from None
    if min(height, width) < 2:
        raise argparse.ArgumentTypeError(f"grid {text!r}: both sizes must be >= 2")
    return height, width


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def grid_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"img size {text!r} is not H,W, e.g. 720,1440") from None
    return height, width


def setting(text: str) -> tuple[str, object]:

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"setting {text!r} is not key=value, e.g. img_size=[720,1440]")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as err:
        raise argparse.ArgumentTypeError(f"setting {text!r}: the value is not YAML ({err})") from None


def shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shape {text!r} is not comma-separated integers, e.g. 1,20,32,64") from None
    return shape


def json_object(text: str) -> dict:

    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--kwargs {text!r} is not JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--kwargs {text!r} is not a JSON object")
    return value


def framework_arguments(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--framework", choices=["torch", "mindspore"], default=default, help="default torch")
    p.add_argument("--ms-mode", choices=MS_MODES, default=None if default is None else "graph",
                   help="MindSpore: compile the step to a graph (default) or run op by op")  # fmt: skip
