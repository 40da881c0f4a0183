"""The flow-matching command line: train --objective flow, sample reads the objective, reflow; and the U-Net on
digits with the same objective (tiny sizes)."""

import os

import numpy as np
import pytest

from tinydiff.cli import main

needs_mnist = pytest.mark.skipif(not os.environ.get("TINYDIFF_DATA"),
                                 reason="needs the MNIST files ($TINYDIFF_DATA unset)")
TINY = ["--steps", "30", "--batch-size", "64", "--n-train", "500", "--quiet"]


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow")
    assert main(["train", "--data", "moons", "--objective", "flow", "--coupling", "ot", "--out", str(out), *TINY]) == 0
    return out


def test_train_flow_records_the_objective_and_coupling(flow_run):
    from tinydiff.flow import load_flow

    config = load_flow(flow_run / "model.npz").config
    assert (config.objective, config.coupling) == ("flow", "ot")


@pytest.mark.parametrize("sampler", [None, "euler", "midpoint", "heun"])
def test_sample_reads_a_flow_checkpoint_without_more_flags(flow_run, tmp_path, sampler):
    out = tmp_path / "s.npy"
    extra = [] if sampler is None else ["--sampler", sampler, "--steps", "3"]
    assert main(["sample", "--checkpoint", str(flow_run / "model.npz"), "--n", "50", "--out", str(out), *extra]) == 0
    x = np.load(out)
    assert x.shape == (50, 2) and np.all(np.isfinite(x))


def test_sample_refuses_a_sampler_that_does_not_apply_to_a_flow(flow_run, tmp_path, capsys):
    code = main(["sample", "--checkpoint", str(flow_run / "model.npz"), "--n", "5", "--out", str(tmp_path / "s.npy"),
                 "--sampler", "ddpm"])
    assert code == 2 and "does not apply to a flow model" in capsys.readouterr().err


def test_reflow_writes_a_rectified_checkpoint_that_samples(flow_run, tmp_path, capsys):
    out = tmp_path / "rf"
    assert main(["reflow", "--checkpoint", str(flow_run / "model.npz"), "--out", str(out), "--pairs", "300",
                 "--ode-steps", "3", "--steps", "10", "--quiet"]) == 0
    assert "straightness" in capsys.readouterr().out
    assert main(["sample", "--checkpoint", str(out / "model.npz"), "--n", "20", "--out", str(tmp_path / "s.npy"),
                 "--steps", "1", "--sampler", "euler"]) == 0


def test_reflow_of_a_diffusion_checkpoint_is_a_clear_error(tmp_path):
    out = tmp_path / "ddpm"
    assert main(["train", "--data", "moons", "--out", str(out), *TINY]) == 0
    with pytest.raises(SystemExit, match="not 'flow'"):
        main(["reflow", "--checkpoint", str(out / "model.npz"), "--out", str(tmp_path / "rf")])


@needs_mnist
def test_conditional_unet_trains_with_flow_matching_and_samples_digits(tmp_path):
    from tinydiff.flow import load_flow

    out = tmp_path / "mnist"
    assert main(["train", "--data", "mnist", "--conditional", "--objective", "flow", "--base-channels", "8",
                 "--n-train", "64", "--steps", "2", "--batch-size", "4", "--out", str(out), "--quiet"]) == 0
    m = load_flow(out / "model.npz")
    assert m.config.conditional and m.num_classes == 10
    x = m.sample(4, steps=2, label=3)                                  # image default: guidance 2
    assert x.shape == (4, 1, 28, 28) and x.min() >= 0 and x.max() <= 1


def test_quality_bar_runs_for_flow_matching(capsys):
    code = main(["quality", "--objective", "flow", "--datasets", "moons", "--steps", "20", "--n", "200",
                 "--permutations", "10"])
    assert code in (0, 1)                            # 20 steps need not pass: this checks the command runs
    assert "| moons | 20 |" in capsys.readouterr().out
