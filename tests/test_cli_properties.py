"""Property tests of the command line's gate (hypothesis): whatever a user types for a setting, `train` either builds
a config whose every number is in its range (config.RANGES), or stops with exit code 2 and one line naming the flag,
before any folder exists. The argument types of every command (positive_int, finite_float, positive_float) either
return a value of their kind or raise argparse's error, never anything else."""

import argparse
import contextlib
import io
import math
from dataclasses import fields

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from tinydiff.cli import build_parser, main  # noqa: E402
from tinydiff.commands.common import finite_float, positive_float, positive_int  # noqa: E402
from tinydiff.commands.train import config_from_args, flag  # noqa: E402
from tinydiff.config import RANGES, ConfigError, TrainConfig  # noqa: E402

NUMERIC = [f.name for f in fields(TrainConfig) if f.type in ("int", "float", "int | None", "float | None")]
PARSER = build_parser()

# what people type: numbers of every size and sign, the float specials, and text that is not a number
TYPED = st.one_of(
    st.integers(-10**7, 10**7).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "0", "0.5", "1", "2", "", " 3", "1_000", "0x10", "1e-9",
                     "3.", ".5", "seven"]),
    st.text(max_size=6),
)


def gate(argv: list[str]):
    """What `train ARGV` does before it touches the disk: ("ok", config), ("usage", stderr) from argparse, or
    ("refused", message) from the config's own checks."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            args = PARSER.parse_args(argv)
    except SystemExit as exc:
        assert exc.code == 2
        return "usage", err.getvalue()
    try:
        return "ok", config_from_args(args)
    except ConfigError as exc:
        return "refused", str(exc)


def test_every_numeric_setting_has_a_range():
    assert sorted(set(NUMERIC) - set(RANGES)) == []


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(NUMERIC), text=TYPED)
def test_train_accepts_a_setting_only_inside_its_range(name, text):
    outcome, result = gate(["train", "--out", "unused", "--data", "moons", f"{flag(name)}={text}"])
    if outcome == "ok":
        for field, (ok, expected) in RANGES.items():
            value = getattr(result, field)
            assert value is None or ok(value), f"{field}={value!r} accepted, but it should be {expected}"
    elif outcome == "usage":
        lines = [line for line in result.strip().splitlines() if line.startswith(("error", "python -m tinydiff"))]
        assert lines and flag(name) in lines[-1], result
    else:
        assert flag(name) in result, result


@settings(max_examples=60, deadline=None)
@given(lr=st.floats(1e-6, 1.0), min_lr=st.floats(0.0, 2.0))
def test_min_lr_above_lr_is_refused(lr, min_lr):
    outcome, result = gate(["train", "--out", "unused", "--data", "moons", f"--lr={lr!r}", f"--min-lr={min_lr!r}"])
    assert (outcome == "ok") == (min_lr <= lr), result


@pytest.mark.parametrize("argv", [["--ema-decay", "1.5"], ["--seed", "-1"], ["--label-dropout", "2"],
                                  ["--reflow", "2"], ["--coupling", "ot"], ["--base-channels", "12"]])
def test_a_refused_setting_makes_no_folder(argv, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "moons", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("error:"), err
    assert not out.exists()


@pytest.mark.parametrize("parse, kind", [(positive_int, lambda v: isinstance(v, int) and v >= 1),
                                         (finite_float, math.isfinite),
                                         (positive_float, lambda v: math.isfinite(v) and v > 0)],
                         ids=["positive_int", "finite_float", "positive_float"])
@given(text=TYPED)
def test_an_argument_type_returns_a_value_of_its_kind_or_says_what_it_expected(parse, kind, text):
    try:
        value = parse(text)
    except argparse.ArgumentTypeError as exc:
        assert str(exc).startswith("expected a"), exc
    else:
        assert kind(value), value
