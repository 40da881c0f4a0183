"""The help a new user reads first: what each command does, where the other tools are, what the data sets are."""

import argparse

import pytest

from tinydiff.cli import COMMANDS, build_parser, main


def test_top_level_help_points_to_the_exercises_and_the_nfe_bench(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "python -m tinydiff.exercises" in out and "python -m tinydiff.bench_nfe" in out


def test_train_one_liner_names_both_networks():
    help_text = COMMANDS["train"][1]
    assert "MLP" in help_text and "U-Net" in help_text and "mnist" in help_text


@pytest.mark.parametrize("command", ["train-classifier"])
def test_every_option_of_the_command_has_help(command):
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    options = [a for a in sub.choices[command]._actions if a.option_strings and a.dest != "help"]
    assert options and all(a.help for a in options), [a.dest for a in options if not a.help]


def test_unknown_data_set_lists_mnist_too(tmp_path, capsys):
    assert main(["train", "--data", "moonz", "--out", str(tmp_path)]) == 2
    assert "mnist" in capsys.readouterr().err
