"""MLPDenoiser: shapes for any point dimension, hand-written gradients, labels, and clear errors."""

import numpy as np
import pytest

from tinydiff.models import MLPDenoiser
from tinydiff.models.mlp import FourierFeatures
from tinydiff.nn import Module, SinusoidalEmbedding, assert_gradients_ok


def small(dim=2, **kw):
    return MLPDenoiser(dim=dim, width=8, n_blocks=2, emb_dim=6, coord_scale=2.0, rng=0, dtype=np.float64, **kw)


def test_defaults_are_the_tiny_diffusion_shape():
    model = MLPDenoiser()
    assert model.dim == 2 and len(model.blocks) == 3 and model.input.out_features == 128
    assert 95_000 < model.num_parameters() < 105_000


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_output_has_the_shape_and_dtype_of_the_points(dim):
    x = np.random.default_rng(0).standard_normal((7, dim)).astype(np.float32)
    out = MLPDenoiser(dim=dim, width=16, n_blocks=1, emb_dim=8).forward(x, np.arange(7))
    assert out.shape == (7, dim) and out.dtype == np.float32


@pytest.mark.parametrize("dim", [1, 3])
def test_gradients_match_finite_differences_in_float64(dim):
    rng = np.random.default_rng(1)
    assert_gradients_ok(small(dim), rng.standard_normal((4, dim)), np.array([0, 5, 99, 3]))


def test_gradients_with_labels_match_finite_differences():
    rng = np.random.default_rng(2)
    model = small(num_classes=3)
    t, y = np.array([1, 2, 3, 4, 5]), np.array([0, 1, 2, 3, 1])  # 3 is the null label

    class WithLabels(Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.forward(x, t, y)

        def backward(self, grad):
            return self.model.backward(grad)

    assert_gradients_ok(WithLabels(), rng.standard_normal((5, 2)))


def test_no_label_means_the_null_label():
    model = small(num_classes=3)
    x, t = np.ones((2, 2)), np.array([3, 4])
    np.testing.assert_array_equal(model.forward(x, t), model.forward(x, t, np.array([3, 3])))
    assert not np.allclose(model.forward(x, t), model.forward(x, t, np.array([0, 0])))


def test_fourier_features_equal_sinusoidal_embedding_of_scaled_coordinates():
    x = np.random.default_rng(3).standard_normal((5, 2))
    ours = FourierFeatures(8, scale=25.0, dtype=np.float64).forward(x)                     # (5, 16)
    ref = SinusoidalEmbedding(8, dtype=np.float64).forward(25.0 * x.reshape(-1))          # (10, 8)
    np.testing.assert_allclose(ours, ref.reshape(5, 16), atol=1e-12)


def test_wrong_point_dimension_names_the_expected_shape():
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        MLPDenoiser().forward(np.zeros((4, 3)), np.zeros(4, dtype=int))


def test_float_time_is_refused_by_a_model_of_a_discrete_schedule():
    with pytest.raises(ValueError, match="integer steps"):
        MLPDenoiser(num_timesteps=1000).forward(np.zeros((4, 2)), np.zeros(4))


def test_float_time_is_embedded_like_the_same_integer_step():
    """A model not tied to a schedule (num_timesteps None: flow matching feeds 1000 t) takes float times; an integral
    float gives the same output as the integer step (issue 15 narrows the old refusal of float t to schedule models)."""
    model, x = MLPDenoiser(rng=0), np.random.default_rng(0).standard_normal((4, 2))
    np.testing.assert_allclose(model.forward(x, np.full(4, 10.0)), model.forward(x, np.full(4, 10)), atol=1e-5)


def test_labels_for_an_unconditional_model_are_refused():
    with pytest.raises(ValueError, match="num_classes"):
        MLPDenoiser().forward(np.zeros((2, 2)), np.zeros(2, dtype=int), np.zeros(2, dtype=int))


def test_backward_without_input_grad_fills_the_same_parameter_gradients_and_returns_none():
    rng = np.random.default_rng(3)
    x, t, dy = rng.standard_normal((4, 2)), np.array([0, 5, 9, 3]), rng.standard_normal((4, 2))
    full, fast = small(), small()
    full.forward(x, t), fast.forward(x, t)
    full.backward(dy)
    assert fast.backward(dy, input_grad=False) is None
    for k, g in full.gradients().items():
        np.testing.assert_array_equal(fast.gradients()[k], g)
