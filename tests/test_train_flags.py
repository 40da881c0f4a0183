"""`python -m tinydiff train`'s flags come from TrainConfig's fields: every setting is reachable, parsed into the config
it names, and choices are checked at parse time. And `--help` starts without importing Numba, SciPy or matplotlib."""

import subprocess
import sys
from dataclasses import fields

import pytest

from tinydiff.cli import build_parser
from tinydiff.commands.train import config_from_args, flag
from tinydiff.config import MNIST_DEFAULTS, TrainConfig, field_help


def parse(*argv):
    return build_parser().parse_args(["train", "--out", "runs/x", *argv])


def test_every_train_config_field_has_a_flag_with_its_comment_as_help():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    by_flag = {s: a for a in sub._actions for s in a.option_strings}
    for f in fields(TrainConfig):
        assert flag(f.name) in by_flag, f"TrainConfig.{f.name} has no flag {flag(f.name)}"
        assert field_help()[f.name] in by_flag[flag(f.name)].help.replace("%%", "%")


def test_flags_are_the_kebab_case_field_names():
    assert (flag("n_train"), flag("max_beta"), flag("T")) == ("--n-train", "--max-beta", "--T")


def test_a_command_line_yields_the_config_it_names():
    args = parse("--data", "swissroll", "--steps", "500", "--max-beta", "0.999", "--prediction-type", "v_prediction",
                 "--schedule", "cosine+ztsnr", "--lr", "1e-3", "--conditional", "--n-blocks", "0")
    assert config_from_args(args) == TrainConfig(data="swissroll", steps=500, max_beta=0.999, lr=1e-3,
                                                 prediction_type="v_prediction", schedule="cosine+ztsnr",
                                                 conditional=True, n_blocks=0)


def test_mnist_flags_override_the_mnist_defaults():
    config = config_from_args(parse("--data", "mnist", "--batch-size", "8", "--beta-end", "0.01"))
    assert config == TrainConfig(**{**MNIST_DEFAULTS, "data": "mnist", "batch_size": 8, "beta_end": 0.01})


def test_unset_flags_leave_the_defaults():
    assert config_from_args(parse("--data", "moons")) == TrainConfig()


@pytest.mark.parametrize("argv", [["--prediction-type", "eps"], ["--model", "transformer"], ["--steps", "0"],
                                  ["--lr", "fast"], ["--schedule", "cosin"], ["--schedule", "linear+zt"]])
def test_a_bad_value_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse("--data", "moons", *argv)
    assert exc.value.code == 2 and argv[0] in capsys.readouterr().err


def test_sample_checks_the_sampler_name_at_parse_time(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sample", "--checkpoint", "x", "--n", "2", "--out", "y.npy", "--sampler", "ddmp"])
    assert "dpm++2m" in capsys.readouterr().err          # the message lists the valid samplers


def test_beta_flags_reach_the_schedule():
    schedule = TrainConfig(schedule="linear", T=100, beta_start=1e-3, beta_end=1e-2).make_schedule()
    assert schedule.betas[0] == pytest.approx(1e-2) and schedule.betas[-1] == pytest.approx(1e-1)  # x 1000 / T


def test_help_does_not_import_numba_scipy_or_matplotlib():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "tinydiff", "--help"], capture_output=True,
                         text=True, check=True)
    imported = {line.split("|")[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    heavy = sorted(m for m in imported if m.split(".")[0] in ("numba", "scipy", "matplotlib", "llvmlite"))
    assert not heavy, f"`python -m tinydiff --help` imports {heavy[:5]}: import them inside the commands' run()"
    assert "usage: python -m tinydiff" in out.stdout


@pytest.mark.parametrize("argv", [["--schedule", "linear", "--max-beta", "0.5"], ["--beta-end", "0.01"],
                                  ["--data", "mnist", "--schedule", "cosine", "--beta-start", "1e-3"]])
def test_a_schedule_setting_that_does_not_apply_is_a_clear_error(argv):
    from tinydiff.config import ConfigError

    with pytest.raises(ConfigError, match="schedule"):
        config_from_args(parse("--data", "moons", *argv))
