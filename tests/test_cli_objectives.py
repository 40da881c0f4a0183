"""The command line with --objective ncsn|edm: the checkpoint records the objective, `sample` uses its default sampler,
every sampler that applies is accepted, one that does not is an error naming the ones that do."""

import numpy as np
import pytest

from tinydiff.cli import main
from tinydiff.trained import load_trained

TINY = ["--steps", "20", "--batch-size", "64", "--n-train", "500", "--width", "32", "--emb-dim", "16", "--quiet"]


@pytest.fixture(scope="module", params=["edm", "ncsn"])
def run(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    assert main(["train", "--data", "moons", "--objective", request.param, "--out", str(out), *TINY]) == 0
    return request.param, out / "model.npz"


def test_the_checkpoint_records_the_objective(run):
    objective, path = run
    m = load_trained(path)
    assert m.objective == objective and m.config.objective == objective
    assert m.prediction_type == {"edm": "sample", "ncsn": "score"}[objective]


def test_sample_uses_the_objectives_default_sampler(run, tmp_path):
    objective, path = run
    out = tmp_path / "s.npy"
    assert main(["sample", "--checkpoint", str(path), "--n", "20", "--out", str(out)]) == 0
    assert np.load(out).shape == (20, 2)
    _, traj = load_trained(path).sample(5, return_trajectory=True)
    assert traj.nfe == {"edm": 35, "ncsn": 200}[objective]          # edm: 18 Heun levels; ncsn: 100 PC levels


@pytest.mark.parametrize("sampler", ["edm", "heun", "euler", "dpm++2m", "sde", "pc", "langevin"])
def test_every_sampler_that_applies_is_accepted(run, sampler, tmp_path):
    _, path = run
    assert main(["sample", "--checkpoint", str(path), "--n", "10", "--out", str(tmp_path / "s.npy"),
                 "--sampler", sampler, "--steps", "5"]) == 0


def test_churn_goes_to_the_edm_sampler(run, tmp_path):
    _, path = run
    assert main(["sample", "--checkpoint", str(path), "--n", "10", "--out", str(tmp_path / "s.npy"),
                 "--sampler", "edm", "--churn", "10"]) == 0


def test_churn_with_another_sampler_is_refused(run, tmp_path, capsys):
    _, path = run
    assert main(["sample", "--checkpoint", str(path), "--n", "10", "--out", str(tmp_path / "s.npy"), "--sampler",
                 "pc", "--churn", "10"]) == 2
    assert "churn applies to the 'edm' sampler" in capsys.readouterr().err


def test_a_score_sampler_on_a_ddpm_model_names_the_ones_that_apply(tmp_path, capsys):
    out = tmp_path / "ddpm"
    assert main(["train", "--data", "moons", "--out", str(out), "--T", "50", *TINY]) == 0
    assert main(["sample", "--checkpoint", str(out / "model.npz"), "--n", "5", "--out", str(tmp_path / "s.npy"),
                 "--sampler", "langevin"]) == 2
    assert "'langevin' does not apply to a ddpm model; expected one of ['ddpm', 'ddim'" in capsys.readouterr().err
