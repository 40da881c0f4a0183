"""The command line: train, sample and demo through ``main([...])``, and the errors a user meets first."""

import json
from pathlib import Path

import numpy as np
import pytest

from tinydiff.cli import main

CHECKPOINT_8G = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "8gaussians.npz"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--data", "moons", "--out", str(out), "--steps", "20", "--T", "50", "--batch-size", "64", "--quiet"]) == 0
    return out


def test_train_writes_the_checkpoint_loss_log_and_figures(trained):
    for name in ("model.npz", "loss.csv", "loss.png", "loss_vs_t.png"):
        assert (trained / name).exists(), name
    assert len(np.loadtxt(trained / "loss.csv", delimiter=",", skiprows=1)) == 20


def test_sample_writes_points_in_data_units(trained, tmp_path):
    from tinydiff.threads import blas_threads

    from tinydiff.samplers import sample
    from tinydiff.train import load_model

    out = tmp_path / "samples.npy"
    args = ["sample", "--checkpoint", str(trained / "model.npz"), "--n", "50", "--out", str(out), "--steps", "10",
            "--seed", "3", "--plot", str(tmp_path / "samples.png")]
    assert main(args) == 0
    x = np.load(out)
    assert x.shape == (50, 2) and (tmp_path / "samples.png").exists()
    model, schedule, std, _ = load_model(trained / "model.npz")
    with blas_threads(1):
        standardised = sample(model, (50, 2), schedule, steps=10, rng=3)
    np.testing.assert_allclose(x, std.inverse_transform(standardised))
    assert not np.allclose(x, standardised)


def test_sample_is_reproducible_with_a_seed(trained, tmp_path):
    outs = [tmp_path / "a.npy", tmp_path / "b.npy"]
    for out in outs:
        main(["sample", "--checkpoint", str(trained), "--n", "20", "--out", str(out), "--steps", "5", "--seed", "4"])
    np.testing.assert_array_equal(np.load(outs[0]), np.load(outs[1]))


def test_resume_continues_to_more_steps(trained, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    assert main(["train", "--out", str(run), "--resume", "--steps", "25", "--quiet"]) == 0
    assert len(np.loadtxt(run / "loss.csv", delimiter=",", skiprows=1)) == 25


def test_unknown_dataset_lists_the_valid_names(tmp_path, capsys):
    assert main(["train", "--data", "moonz", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "moonz" in err and "swissroll" in err and "checkerboard" in err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    args = ["sample", "--checkpoint", str(tmp_path / "nope.npz"), "--n", "5", "--out", str(tmp_path / "x.npy")]
    assert main(args) == 2
    assert "no checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-3", "many"])
def test_bad_n_is_a_usage_error(tmp_path, capsys, bad):
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--checkpoint", str(tmp_path), "--n", bad, "--out", str(tmp_path / "x.npy")])
    assert exc.value.code == 2 and "positive integer" in capsys.readouterr().err


def test_quick_demo_writes_every_figure(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "passes=False is expected" in out and "BLAS thread(s)" in out   # says why quick mode cannot pass
    for name in ("data_vs_samples.png", "forward_chain.png", "reverse_chain.png", "reverse_chain.gif", "loss.png",
                 "loss_vs_t.png", "vector_field.png", "model.npz"):
        assert (tmp_path / name).exists(), name
    assert {"mmd2", "p_value", "energy", "w2"} <= set(json.loads((tmp_path / "metrics.json").read_text()))


@pytest.mark.parametrize("bad", ["0", "-1", "big"])
def test_sample_rejects_a_bad_clip_value(bad, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["sample", "--checkpoint", str(tmp_path), "--n", "2", "--out", str(tmp_path / "x.npy"), "--clip", bad])
    assert "positive number or 'dynamic'" in capsys.readouterr().err


def test_sample_clips_the_x0_estimate_when_asked(tmp_path):
    from tinydiff.commands.sample import clip_value

    assert clip_value("1") == 1.0 and clip_value("dynamic") == "dynamic"
    out = tmp_path / "x.npy"
    assert main(["sample", "--checkpoint", str(CHECKPOINT_8G), "--n", "50", "--out", str(out), "--steps", "10",
                 "--sampler", "ddim", "--clip", "0.5"]) == 0
    from tinydiff.train import load_model

    standardizer = load_model(CHECKPOINT_8G)[2]
    z = standardizer.transform(np.load(out))        # DDIM's last step returns the (clipped) x0 estimate
    assert z.shape == (50, 2) and np.abs(z).max() <= 0.5 + 1e-6


def test_train_threads_is_stored_with_the_blas_share_of_the_model(tmp_path):
    from tinydiff.checkpoint import load_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--data", "moons", "--out", str(out), "--steps", "2", "--T", "50", "--batch-size", "64",
                 "--threads", "2", "--quiet"]) == 0
    config = json.loads(str(load_checkpoint(out / "model.npz")["meta/config"]))
    assert (config["threads"], config["blas_threads"]) == (2, 2), "the MLP's work is BLAS: it gets the threads"
    assert main(["train", "--data", "moons", "--out", str(out), "--steps", "2", "--T", "50", "--batch-size", "64",
                 "--threads", "2", "--blas-threads", "1", "--quiet", "--overwrite"]) == 0
    config = json.loads(str(load_checkpoint(out / "model.npz")["meta/config"]))
    assert (config["threads"], config["blas_threads"]) == (2, 1), "--blas-threads overrides the share"


def test_blas_share_gives_the_cores_to_the_pool_that_does_the_work():
    from tinydiff.threads import blas_share

    assert blas_share(2, "mlp") == 2 and blas_share(2, "unet") == 1 and blas_share(1, "unet") == 1


CHECKPOINT_MNIST = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "mnist_conditional.npz"


def test_sample_uses_every_core_for_images_by_default_and_draws_the_same_bits(tmp_path, monkeypatch):
    import tinydiff.threads as threads

    asked = []
    real = threads.use_threads

    def recording(n, blas=None):
        asked.append((n, blas))
        return real(n, blas)

    monkeypatch.setattr(threads, "use_threads", recording)
    args = ["sample", "--checkpoint", str(CHECKPOINT_MNIST), "--n", "3", "--label", "7", "--steps", "2"]
    assert main(args + ["--out", str(tmp_path / "auto.npy")]) == 0
    assert asked[-1] == (threads.usable_cores(), 1), "images: the U-Net's kernels get the cores, BLAS one thread"
    assert main(args + ["--out", str(tmp_path / "one.npy"), "--threads", "1"]) == 0
    assert asked[-1] == (1, 1)
    np.testing.assert_array_equal(np.load(tmp_path / "auto.npy"), np.load(tmp_path / "one.npy"))
    assert main(["sample", "--checkpoint", str(CHECKPOINT_8G), "--n", "5", "--steps", "3", "--sampler", "ddim",
                 "--out", str(tmp_path / "p.npy")]) == 0
    assert asked[-1] == (1, 1), "points: one thread (a second BLAS thread does not pay on small matrices)"
