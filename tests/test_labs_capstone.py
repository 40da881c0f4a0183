"""The capstone's automatic check: thresholds applied as stated, submissions refused with what is wrong, and (slow,
needs MNIST) real test digits pass while noise fails."""

import numpy as np
import pytest

from tinydiff.labs.capstone import MAX_FD_OVER_FLOOR, N_SAMPLES, read_submission, score_model


def test_each_threshold_gives_its_points_only_when_met():
    good = score_model(dict(name="flow", accuracy=0.9, fd=10.0, copies=0.01), floor_fd=4.0)
    assert [t["score"] for t in good] == [2.0, 2.0, 1.0]
    bad = score_model(dict(name="flow", accuracy=0.8, fd=MAX_FD_OVER_FLOOR * 4.0 + 0.1, copies=0.2), floor_fd=4.0)
    assert [t["score"] for t in bad] == [0.0, 0.0, 0.0]
    assert "need >= 0.85" in bad[0]["output"] and "floor 4.00" in bad[1]["output"]


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_a_submission_must_hold_two_models_with_the_stated_shapes(tmp_path):
    x, y = np.zeros((N_SAMPLES, 1, 28, 28)), np.zeros(N_SAMPLES, int)
    with pytest.raises(ValueError, match="exactly two models"):
        read_submission(_write(tmp_path / "a.npz", images_a=x, labels_a=y, nfe_a=10))
    with pytest.raises(ValueError, match="needs nfe_b"):
        read_submission(_write(tmp_path / "b.npz", images_a=x, labels_a=y, nfe_a=10, images_b=x, labels_b=y))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        read_submission(_write(tmp_path / "c.npz", images_a=x - 1, labels_a=y, nfe_a=10, images_b=x, labels_b=y, nfe_b=10))
    got = read_submission(_write(tmp_path / "d.npz", images_a=x, labels_a=y, nfe_a=10, images_b=x, labels_b=y, nfe_b=10))
    assert sorted(got) == ["a", "b"] and got["a"]["nfe"] == 10


@pytest.mark.slow
def test_real_test_digits_pass_and_noise_fails(tmp_path):
    from tinydiff.data.mnist import load_mnist_float
    from tinydiff.labs.capstone import check_capstone

    try:
        test_x, test_y = load_mnist_float(None, "test", download=False)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"MNIST not available: {e}")
    real = test_x[5000:5000 + N_SAMPLES]
    noise = np.random.default_rng(0).random((N_SAMPLES, 1, 28, 28)).astype(np.float32)
    y = test_y[5000:5000 + N_SAMPLES]
    results = check_capstone(_write(tmp_path / "s.npz", images_real=real, labels_real=y, nfe_real=20,
                                    images_noise=noise, labels_noise=y, nfe_noise=20))
    scores = {t["name"]: t["score"] for t in results["tests"]}
    assert scores["real: accuracy"] == 2 and scores["real: fd"] == 2
    assert scores["noise: accuracy"] == 0 and scores["noise: fd"] == 0
