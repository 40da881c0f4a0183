"""Small pieces the point-model subcommands share: argument types and turning tinydiff's errors into messages."""

from __future__ import annotations

import argparse
import functools
import math
import sys

from tinydiff.errors import TinydiffError


def thread_count(text: str):
    """argparse type: a thread count >= 1, or 'auto' (the cores that pay for the model: threads.auto_threads)."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (so `--n 0` or `--n -5` fails with a usage message, not deep inside numpy)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def finite_float(text: str) -> float:
    """argparse type: a finite number (so `--lr nan` or `--guidance inf` fails at once with a usage message)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (a learning rate, a scale)."""
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def reports_errors(run):
    """Wrap a command's run(args): a TinydiffError (bad data, missing checkpoint, divergence) prints
    'error: <message>' on stderr and returns exit code 2 instead of a traceback."""

    @functools.wraps(run)
    def wrapper(args):
        try:
            return run(args)
        except TinydiffError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2

    return wrapper
