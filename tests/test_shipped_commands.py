"""The `python -m tinydiff train` commands quoted in the README, docs/ and chapters/ rebuild the shipped checkpoints.

Each quoted command that trains a data set we ship a checkpoint of (data/checkpoints/) is parsed with the CLI's own
argument parser into the TrainConfig it would run, and compared with the config stored in that checkpoint, and the
schedule it would build with the betas stored there. A student who retrains from the text gets the model the text
describes (issue 13, erratum 11).
"""

import argparse
import json
import re
import shlex
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from tinydiff.checkpoint import from_json_array, load_checkpoint
from tinydiff.commands import train as train_command
from tinydiff.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "data" / "checkpoints"
# (data, conditional, latent, objective) -> checkpoint. A latent command (--latent) does not rebuild the pixel model;
# mnist_latent.npz was trained by a command and a --resume (README, "Latent diffusion"), so no one command rebuilds it
SHIPPED = {("8gaussians", False, False, "ddpm"): "8gaussians.npz",
           ("8gaussians", True, False, "ddpm"): "8gaussians_conditional.npz",
           ("mnist", True, False, "ddpm"): "mnist_conditional.npz", ("mnist", True, False, "flow"): "mnist_flow.npz"}
NO_EFFECT_ON_WEIGHTS = {"checkpoint_every", "threads", "blas_threads"}   # bookkeeping: the weights do not depend on them


def quoted_train_commands() -> list[tuple[str, str]]:
    """(where, command) for every `python -m tinydiff train ...` in README.md, docs/*.md and chapters/*.py."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "chapters").glob("*.py"))]:
        text = re.sub(r"\\\n[ \t#]*", " ", path.read_text())            # join continued lines (also in # comments)
        for m in re.finditer(r"python -m tinydiff train (.*)", text):
            rest = re.split(r"[`#(]", m.group(1))[0]                      # stop at a closing backtick or a comment
            found.append((f"{path.relative_to(ROOT)}: {m.group(0)[:60]}", rest.strip()))
    return found


def config_of(command: str) -> TrainConfig:
    """The TrainConfig `python -m tinydiff train <command>` would train (the CLI's own parser and defaults)."""
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    tokens = shlex.split(command)
    if "--out" not in tokens:
        tokens += ["--out", "runs/x"]
    try:
        args = parser.parse_args(tokens)
    except SystemExit:                                   # argparse has printed why on stderr
        raise ValueError(f"`python -m tinydiff train {command}` does not parse") from None
    return train_command.config_from_args(args)


def parses(command: str) -> bool:
    try:
        config_of(command)
    except ValueError:
        return False
    return True


def without_out_and_quiet(command: str) -> list[str]:
    """The tokens of a train command without `--out DIR` and `--quiet` (they do not change the model)."""
    tokens, kept = shlex.split(command), []
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--out":
            skip = True
        elif token != "--quiet":
            kept.append(token)
    return kept


def shipped_commands():
    cases = []
    for where, command in quoted_train_commands():
        if "..." in command or "--data" not in command or not parses(command):
            continue                                  # an abbreviated mention (the full one is quoted elsewhere), --help;
        config = config_of(command)                   # one that does not parse fails the test below
        name = SHIPPED.get((config.data, config.conditional, bool(config.latent), config.objective))
        if name is not None and (CHECKPOINTS / name).exists():
            cases.append(pytest.param(command, name, id=f"{where} -> {name}"))
    return cases


def test_every_quoted_train_command_parses():
    broken = [where for where, command in quoted_train_commands()
              if "..." not in command and "--data" in command and not parses(command)]
    assert not broken, f"these quoted `python -m tinydiff train` commands do not parse (a placeholder such as N?): {broken}"


def test_the_texts_quote_a_command_for_every_shipped_checkpoint():
    quoted = {case.values[1] for case in shipped_commands()}
    shipped = {name for name in SHIPPED.values() if (CHECKPOINTS / name).exists()}
    assert shipped <= quoted, f"no quoted `python -m tinydiff train` command rebuilds {sorted(shipped - quoted)}"


@pytest.mark.parametrize("command, checkpoint", shipped_commands())
def test_quoted_command_gives_the_stored_config(command, checkpoint):
    """Fields a checkpoint predates (e.g. beta_start) load as their defaults, as load_model reads them."""
    arrays = load_checkpoint(CHECKPOINTS / checkpoint)
    stored = asdict(TrainConfig.from_dict(json.loads(str(arrays["meta/config"]))))
    quoted = asdict(config_of(command))
    differ = {k: (quoted[k], stored[k]) for k in quoted if k not in NO_EFFECT_ON_WEIGHTS and quoted[k] != stored[k]}
    assert not differ, f"`python -m tinydiff train {command}` would not rebuild {checkpoint}: (quoted, stored) {differ}"


@pytest.mark.parametrize("command, checkpoint", shipped_commands())
def test_quoted_command_builds_the_stored_schedule(command, checkpoint):
    betas = load_checkpoint(CHECKPOINTS / checkpoint)["schedule/betas"]
    np.testing.assert_allclose(config_of(command).make_schedule().betas, betas, rtol=1e-12,
                               err_msg=f"the schedule of `{command}` is not the one stored in {checkpoint}")


@pytest.mark.parametrize("command, checkpoint", shipped_commands())
def test_quoted_command_is_the_one_stored_in_the_checkpoint(command, checkpoint):
    arrays = load_checkpoint(CHECKPOINTS / checkpoint)
    if "meta/command" not in arrays:
        pytest.skip(f"{checkpoint} was written before checkpoints stored their command")
    stored = from_json_array(arrays["meta/command"])
    assert without_out_and_quiet(stored) == without_out_and_quiet(f"python -m tinydiff train {command}"), (
        f"{checkpoint} was made by `{stored}`, but the text quotes `python -m tinydiff train {command}`")
