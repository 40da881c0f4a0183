"""bench_nfe: the NFE table of a trained checkpoint is measured in the data's units."""

from pathlib import Path

import numpy as np

from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
from tinydiff.bench_nfe import main, nfe_table
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.schedules import NoiseSchedule

MIX = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
SCHEDULE = NoiseSchedule.linear(T=100)
CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "8gaussians.npz"


def test_to_data_is_applied_to_the_samples_before_they_are_measured():
    model, reference = GaussianMixtureDenoiser(MIX, SCHEDULE), MIX.sample(200, rng=1)
    plain = nfe_table(model, reference, SCHEDULE, ["ddim"], [20], n=200, mixture=MIX)[0]
    same = nfe_table(model, reference, SCHEDULE, ["ddim"], [20], n=200, mixture=MIX, to_data=lambda x: x)[0]
    halved = nfe_table(model, reference, SCHEDULE, ["ddim"], [20], n=200, mixture=MIX, to_data=lambda x: x / 2)[0]
    assert same == plain
    assert plain["mode_std"] < 0.2 < halved["mode_std"]  # halved points sit at radius 1, one unit from every centre


def test_main_measures_a_shipped_checkpoint_in_data_units(capsys):
    main(["--checkpoint", str(CHECKPOINT), "--n", "100", "--steps", "20", "--methods", "ddpm", "--clip", "3"])
    out = capsys.readouterr().out
    assert "trained MLP" in out and "| ddpm | 20 | 20 |" in out
    mode_std = float(out.splitlines()[3].split("|")[6])
    assert 0.05 < mode_std < 0.2  # the data have 0.1; unmapped (standardised) points at radius 1.4 would give ~0.6
