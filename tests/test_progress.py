"""Long steps show progress on stderr: training (after a compile notice, so the ETA excludes compilation), sampling,
the MMD permutation test and the image evaluation."""

from pathlib import Path

import numpy as np

from tinydiff.cli import main
from tinydiff.train import TrainConfig, train

CHECKPOINT_8G = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "8gaussians.npz"


def tiny(**kw) -> TrainConfig:
    base = dict(data="moons", n_train=256, steps=3, batch_size=32, T=50, width=16, n_blocks=1, emb_dim=8,
                warmup_steps=1, checkpoint_every=1000)
    return TrainConfig(**{**base, **kw})


def test_training_says_it_compiles_before_the_progress_bar_starts_its_clock(capsys):
    train(tiny(), progress=True)
    err = capsys.readouterr().err
    notice, bar = err.find("compiling kernels (first run only"), err.find("training on moons (threads 1, BLAS 1)")
    assert 0 <= notice < bar, err
    assert "1/3" in err, "the bar starts after the first (compiling) step"


def test_training_without_progress_prints_nothing(capsys):
    train(tiny(), progress=False)
    assert capsys.readouterr().err == ""


def test_the_sample_command_shows_a_bar_over_the_sampling_steps(tmp_path, capsys):
    args = ["sample", "--checkpoint", str(CHECKPOINT_8G), "--n", "10", "--steps", "7", "--out", str(tmp_path / "x.npy")]
    assert main(args) == 0
    assert "sampling (ddpm, 7 steps)" in capsys.readouterr().err


def test_a_callers_bar_advances_once_per_sampling_step():
    from tinydiff.analytic import GaussianMixture, GaussianMixtureDenoiser
    from tinydiff.samplers import sample
    from tinydiff.schedules import NoiseSchedule

    class Counter:
        n = 0

        def update(self, k):
            self.n += k

    schedule = NoiseSchedule.cosine(T=100)
    mixture = GaussianMixture(weights=[1.0], means=[[0.0, 0.0]], covs=[np.eye(2)])
    bar = Counter()
    sample(GaussianMixtureDenoiser(mixture, schedule), (4, 2), schedule, method="ddim", steps=9, rng=0, progress=bar)
    assert bar.n == 9


def test_the_permutation_test_shows_progress_and_gives_the_same_p_value(capsys):
    from tinydiff.metrics.points import mmd_test

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((60, 2)), rng.standard_normal((50, 2)) + 0.3
    quiet = mmd_test(x, y, n_permutations=300, rng=1)
    assert capsys.readouterr().err == ""
    shown = mmd_test(x, y, n_permutations=300, rng=1, progress=True)
    assert "MMD permutation test" in capsys.readouterr().err
    assert shown == quiet
