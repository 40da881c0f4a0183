"""Specification of the MNIST classifier (the judge of the image metrics): gradients, loss, loading and its digest."""

import numpy as np
import pytest

from tinydiff.models.classifier import (
    CLASSIFIER_PATH,
    CLASSIFIER_SHA256,
    ClassifierError,
    MNISTClassifier,
    cross_entropy,
    file_sha256,
    load_classifier,
    random_shift,
    save_classifier,
)
from tinydiff.nn import assert_gradients_ok
from tinydiff.nn.gradcheck import central_differences


def images(B=2, seed=0):
    return np.random.default_rng(seed).random((B, 1, 28, 28))


def test_gradient_check_of_the_classifier():
    model = MNISTClassifier(channels=(8, 16), feature_dim=8, dtype=np.float64)   # 2 channels per GroupNorm group
    assert_gradients_ok(model, images(), max_coords=8)


def test_features_and_logits_have_the_documented_shapes():
    model = MNISTClassifier()
    x = images(3).astype(np.float32)
    assert model.features(x).shape == (3, 128)
    assert model.forward(x).shape == (3, 10)


def test_features_are_the_input_of_the_last_layer():
    model = MNISTClassifier()
    x = images(3).astype(np.float32)
    f = model.features(x)
    np.testing.assert_allclose(model.forward(x), f @ model.head.params["weight"].T + model.head.params["bias"],
                               rtol=1e-5, atol=1e-6)


def test_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((4, 10)), np.array([0, 3, 9, 3])
    _, dz = cross_entropy(z, y)
    num = central_differences(lambda: cross_entropy(z, y)[0], z)
    np.testing.assert_allclose(dz, num, atol=1e-8)


def test_cross_entropy_of_uniform_logits_is_log_k():
    loss, _ = cross_entropy(np.zeros((3, 10)), np.array([1, 2, 3]))
    assert loss == pytest.approx(np.log(10))


def test_random_shift_moves_a_centred_dot_without_losing_it():
    x = np.zeros((5, 1, 28, 28), dtype=np.float32)
    x[:, :, 14, 14] = 1.0
    y = random_shift(x, 2, np.random.default_rng(0))
    assert y.shape == x.shape and np.all(y.sum(axis=(1, 2, 3)) == 1.0)
    rows, cols = np.nonzero(y[:, 0])[1:]
    assert np.all(np.abs(rows - 14) <= 2) and np.all(np.abs(cols - 14) <= 2)


def test_save_and_load_round_trip_with_its_digest(tmp_path):
    model = MNISTClassifier(rng=3)
    digest = save_classifier(model, tmp_path / "c.npz")
    loaded = load_classifier(tmp_path / "c.npz", sha256=digest)
    x = images(2).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), loaded.forward(x))


def test_loading_a_file_with_the_wrong_digest_says_how_to_retrain(tmp_path):
    save_classifier(MNISTClassifier(rng=3), tmp_path / "c.npz")
    with pytest.raises(ClassifierError, match="train-classifier"):
        load_classifier(tmp_path / "c.npz", sha256="0" * 64)


def test_missing_weights_say_how_to_train_them(tmp_path):
    with pytest.raises(ClassifierError, match="train-classifier"):
        load_classifier(tmp_path / "nothing.npz")


def test_shipped_weights_match_the_recorded_digest():
    assert CLASSIFIER_SHA256 is not None and CLASSIFIER_PATH.exists()
    assert file_sha256(CLASSIFIER_PATH) == CLASSIFIER_SHA256
    assert CLASSIFIER_PATH.stat().st_size < 2_000_000


@pytest.mark.mnist
def test_shipped_classifier_is_accurate_on_test_digits():
    from tinydiff.data.mnist import load_mnist_float

    x, y = load_mnist_float(split="test", download=False)
    model = load_classifier()
    assert (model.predict(x[:500]) == y[:500]).mean() >= 0.98     # 99.16 % on all 10,000 (docs/mnist.md)
