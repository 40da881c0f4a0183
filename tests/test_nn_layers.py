"""Specifications of the core layers: gradients (float64 checks), dtypes, shapes and errors, dropout, embeddings, loss."""

import numpy as np
import pytest

from tinydiff.nn import (GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Sequential, SiLU,
                         SinusoidalEmbedding, assert_gradients_ok, mse_loss)
from tinydiff.rng import make_rng

F64 = np.float64


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- gradient checks in float64 -------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1, 3), (5, 3), (2, 4, 3)])
def test_linear_passes_gradient_check(shape):
    assert_gradients_ok(Linear(3, 4, rng=0, dtype=F64), randn(*shape))


def test_linear_without_bias_passes_gradient_check():
    layer = Linear(3, 2, rng=0, dtype=F64, bias=False)
    assert "bias" not in layer.parameters()
    assert_gradients_ok(layer, randn(4, 3))


@pytest.mark.parametrize("shape", [(2, 5), (3, 2, 4)])
def test_layernorm_passes_gradient_check(shape):
    ln = LayerNorm(shape[-1], dtype=F64)
    ln.params["weight"][...] = 1 + 0.5 * randn(shape[-1], seed=1)     # non-trivial affine, so its grads matter
    ln.params["bias"][...] = randn(shape[-1], seed=2)
    assert_gradients_ok(ln, randn(*shape))


@pytest.mark.parametrize("layer", [SiLU(), GELU(), GELU(approximate="tanh"), Identity()], ids=repr)
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 2, 2)])
def test_smooth_activation_passes_gradient_check(layer, shape):
    assert_gradients_ok(layer, 2 * randn(*shape))


def test_relu_passes_gradient_check_away_from_its_kink():
    x = randn(4, 5)
    x[np.abs(x) < 0.1] = 0.5                                            # finite differences across 0 are meaningless
    assert_gradients_ok(ReLU(), x)


def test_dropout_in_eval_mode_passes_gradient_check():
    assert_gradients_ok(Dropout(0.5, rng=0).eval(), randn(3, 4))


def test_sequential_mlp_passes_gradient_check():
    mlp = Sequential(Linear(2, 8, rng=0, dtype=F64), GELU(), LayerNorm(8, dtype=F64), Linear(8, 3, rng=1, dtype=F64))
    report = assert_gradients_ok(mlp, randn(5, 2))
    assert set(report.errors) == {"input0", "layers.0.weight", "layers.0.bias", "layers.2.weight",
                                  "layers.2.bias", "layers.3.weight", "layers.3.bias"}


def test_embedding_passes_gradient_check_for_its_weight():
    report = assert_gradients_ok(Embedding(5, 3, rng=0, dtype=F64), np.array([[0, 4, 4], [2, 0, 1]]))
    assert list(report.errors) == ["weight"]                            # integer indices are not checked


@pytest.mark.parametrize("dim", [4, 7])
def test_sinusoidal_embedding_passes_gradient_check_for_float_steps(dim):
    assert_gradients_ok(SinusoidalEmbedding(dim, dtype=F64), np.array([0.0, 1.5, 30.0]))


# ---- dtypes --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda: Linear(3, 3, rng=0), lambda: LayerNorm(3), ReLU, SiLU, GELU,
                                  lambda: GELU("tanh"), lambda: Dropout(0.3, rng=0)])
def test_float32_layer_keeps_float32_forward_and_backward(make):
    layer = make()
    y = layer.forward(randn(4, 3).astype(np.float32))
    dx = layer.backward(np.ones_like(y))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.gradients().values())


def test_parameters_are_created_in_the_requested_dtype():
    assert Linear(2, 2, dtype=F64).params["weight"].dtype == F64
    assert LayerNorm(2, dtype=F64).params["bias"].dtype == F64
    assert Embedding(3, 2, dtype=F64).params["weight"].dtype == F64


def test_sinusoidal_embedding_output_dtype_defaults_to_float32():
    assert SinusoidalEmbedding(8)(np.arange(3)).dtype == np.float32


# ---- shapes and errors ------------------------------------------------------------------------------------------------
def test_linear_rejects_wrong_feature_count_naming_the_expected_shape():
    with pytest.raises(ValueError, match=r"expected input of shape \(\.\.\., 2\), got \(5, 3\)"):
        Linear(2, 4, rng=0).forward(np.zeros((5, 3)))


def test_layernorm_rejects_wrong_last_axis():
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\), got \(2, 3\)"):
        LayerNorm(4).forward(np.zeros((2, 3)))


def test_linear_backward_rejects_a_gradient_of_the_wrong_shape_naming_the_expected_one():
    layer = Linear(3, 4, rng=0)
    layer.forward(np.zeros((5, 3), np.float32))
    with pytest.raises(ValueError, match=r"grad_output must have the shape of the forward output, \(5, 4\), got \(5, 3\)"):
        layer.backward(np.ones((5, 3), np.float32))


def test_load_state_dict_refuses_nan_naming_the_key_and_copies_nothing():
    a, b = Sequential(Linear(3, 4, rng=0), Linear(4, 2, rng=1)), Sequential(Linear(3, 4, rng=2), Linear(4, 2, rng=3))
    state = a.state_dict()
    state["layers.1.bias"][1] = np.nan
    before = b.state_dict()
    with pytest.raises(ValueError, match=r"'layers.1.bias' holds 1 NaN or inf"):
        b.load_state_dict(state)
    for k, v in b.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_linear_keeps_leading_axes():
    assert Linear(3, 5, rng=0).forward(np.zeros((2, 7, 3), np.float32)).shape == (2, 7, 5)


def test_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    w = Linear(16, 200, rng=0).params["weight"]
    assert np.abs(w).max() <= 0.25 and np.abs(w).max() > 0.24


def test_same_seed_gives_same_weights_and_generator_is_accepted():
    a, b = Linear(3, 3, rng=7), Linear(3, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["weight"], b.params["weight"])


def test_make_rng_rejects_legacy_random_state():
    with pytest.raises(TypeError, match="default_rng"):
        make_rng(np.random.RandomState(0))


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match='"none" or "tanh"'):
        GELU("fast")


def test_relu_zeroes_negative_inputs():
    np.testing.assert_array_equal(ReLU().forward(np.array([-1.0, 0.0, 2.0])), [0.0, 0.0, 2.0])


# ---- LayerNorm values -----------------------------------------------------------------------------------------------
def test_layernorm_output_has_zero_mean_and_unit_variance_per_row():
    y = LayerNorm(6, dtype=F64).forward(3 + 5 * randn(4, 6))
    np.testing.assert_allclose(y.mean(axis=-1), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=-1), 1, rtol=1e-4)        # eps = 1e-5 shrinks it slightly


# ---- Dropout ----------------------------------------------------------------------------------------------------------
def test_dropout_in_training_zeroes_about_p_and_rescales_the_rest():
    y = Dropout(0.25, rng=0).forward(np.ones((200, 100), dtype=np.float32))
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.75, rtol=1e-6)


def test_dropout_in_eval_mode_is_identity():
    x = randn(3, 4)
    np.testing.assert_array_equal(Dropout(0.5, rng=0).eval().forward(x), x)


def test_dropout_backward_uses_the_forward_mask():
    d = Dropout(0.5, rng=0)
    y = d.forward(np.ones((10, 10)))
    np.testing.assert_array_equal(d.backward(np.ones((10, 10))), y)


def test_dropout_rejects_p_of_one():
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


# ---- Embeddings -------------------------------------------------------------------------------------------------------
def test_embedding_looks_up_rows():
    emb = Embedding(4, 3, rng=0)
    np.testing.assert_array_equal(emb.forward(np.array([[2, 0]])), emb.params["weight"][[[2, 0]]])


def test_embedding_backward_adds_up_repeated_indices():
    emb = Embedding(4, 2, rng=0, dtype=F64)
    emb.forward(np.array([1, 3, 1, 1]))
    assert emb.backward(np.array([[1.0, 0], [5, 5], [2, 0], [4, 1]])) is None
    np.testing.assert_array_equal(emb.grads["weight"], [[0, 0], [7, 1], [0, 0], [5, 5]])


def test_embedding_rejects_out_of_range_and_float_indices():
    with pytest.raises(IndexError, match=r"\[0, 4\)"):
        Embedding(4, 2).forward(np.array([4]))
    with pytest.raises(TypeError, match="integers"):
        Embedding(4, 2).forward(np.array([1.0]))


def test_sinusoidal_embedding_at_zero_is_sines_zero_cosines_one():
    emb = SinusoidalEmbedding(6)(np.array([0]))
    np.testing.assert_array_equal(emb, [[0, 0, 0, 1, 1, 1]])


def test_sinusoidal_embedding_frequencies_run_from_one_to_one_over_max_period():
    e = SinusoidalEmbedding(8, max_period=100.0)
    np.testing.assert_allclose(e.freqs[[0, -1]], [1.0, 0.01])


def test_sinusoidal_embedding_of_integer_steps_has_no_gradient():
    e = SinusoidalEmbedding(4)
    y = e.forward(np.array([3, 5]))
    assert e.backward(np.ones_like(y)) is None


def test_sinusoidal_embedding_rejects_non_vector_steps():
    with pytest.raises(ValueError, match=r"\(B,\)"):
        SinusoidalEmbedding(4).forward(np.zeros((2, 1)))


# ---- MSE loss ---------------------------------------------------------------------------------------------------------
def test_mse_loss_without_weights_is_the_mean_squared_error():
    pred, target = randn(3, 4), randn(3, 4, seed=1)
    loss, _ = mse_loss(pred, target)
    assert loss == pytest.approx(np.mean((pred - target) ** 2))


def test_mse_loss_weights_each_sample_mean():
    pred = np.array([[1.0, 1.0], [2.0, 0.0]])
    loss, _ = mse_loss(pred, np.zeros_like(pred), weights=np.array([3.0, 0.5]))
    assert loss == pytest.approx((3.0 * 1.0 + 0.5 * 2.0) / 2)         # per-sample means 1 and 2


def test_mse_loss_gradient_matches_finite_differences():
    pred, target, w = randn(3, 2, 2), randn(3, 2, 2, seed=1), np.array([1.0, 0.2, 3.0])
    _, grad = mse_loss(pred, target, w)
    num = np.zeros_like(pred)
    for k in range(pred.size):
        e = np.zeros(pred.size)
        e[k] = 1e-6
        e = e.reshape(pred.shape)
        num.flat[k] = (mse_loss(pred + e, target, w)[0] - mse_loss(pred - e, target, w)[0]) / 2e-6
    np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-9)


def test_mse_loss_keeps_float32_gradient():
    _, g = mse_loss(np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32), np.ones(2))
    assert g.dtype == np.float32


def test_mse_loss_rejects_mismatched_shapes_and_weights():
    with pytest.raises(ValueError, match="must match"):
        mse_loss(np.zeros((2, 3)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        mse_loss(np.zeros((2, 3)), np.zeros((2, 3)), weights=np.ones(3))
