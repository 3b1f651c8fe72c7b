"""Argument types and shared options of the command line."""

from __future__ import annotations

import argparse
import json

import yaml

QUIET = argparse.ArgumentParser(add_help=False)
QUIET.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def grid(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"grid {text!r} is not HxW, e.g. 32x64 or 721x1440") from None
    return height, width


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def img_size(text: str) -> tuple[int, int]:
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
    p.add_argument("--ms-mode", choices=["graph", "pynative"], default=None if default is None else "graph",
                   help="MindSpore: compile the step to a graph (default) or run op by op")  # fmt: skip
