"""The gradient checker must pass correct layers and fail wrong ones with a message that points at the cause."""

import numpy as np
import pytest

from tinydiff.nn import GELU, Linear, Module, assert_gradients_ok, check_module


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


class LinearForgetsToSumBias(Linear):
    """A deliberately wrong backward: the bias gradient takes only the first row instead of summing over the batch."""

    def backward(self, grad_output):
        dx = super().backward(grad_output)
        self.grads["bias"][...] = grad_output[0]
        return dx


class GELUWithoutChainRule(GELU):
    """A deliberately wrong backward: returns f'(x) and forgets to multiply by dL/dy."""

    def backward(self, grad_output):
        return super().backward(np.ones_like(grad_output))


class DoubledLinear(Linear):
    """A deliberately wrong backward: the weight gradient is twice too large."""

    def backward(self, grad_output):
        dx = super().backward(grad_output)
        self.grads["weight"][...] *= 2
        return dx


def test_check_passes_a_correct_layer_with_tiny_errors():
    report = check_module(Linear(3, 2, rng=0, dtype=np.float64), randn(4, 3), verbose=False)
    assert report.ok and max(report.errors.values()) < 1e-8


def test_check_fails_a_wrong_bias_gradient_and_names_the_batch_sum():
    with pytest.raises(AssertionError) as err:
        assert_gradients_ok(LinearForgetsToSumBias(3, 2, rng=0, dtype=np.float64), randn(4, 3))
    msg = str(err.value)
    assert "grad of 'bias' wrong" in msg and "expected < 1e-06" in msg and "sum over the batch axis" in msg
    assert "'weight'" not in msg                                       # the right gradients are not blamed


def test_check_blames_the_chain_rule_when_only_the_input_gradient_is_wrong():
    with pytest.raises(AssertionError, match="input gradient wrong but parameter gradients right|chain rule"):
        assert_gradients_ok(GELUWithoutChainRule(), randn(3, 4))


def test_check_reports_a_constant_factor():
    with pytest.raises(AssertionError, match="2 times the numeric one"):
        assert_gradients_ok(DoubledLinear(3, 2, rng=0, dtype=np.float64), randn(4, 3))


def test_check_refuses_float32_modules():
    with pytest.raises(TypeError, match="dtype=np.float64"):
        check_module(Linear(2, 2, rng=0), randn(3, 2), verbose=False)


def test_check_samples_a_subset_of_coordinates_for_large_tensors():
    class CountingLinear(Linear):
        calls = 0

        def forward(self, x):
            CountingLinear.calls += 1
            return super().forward(x)

    layer = CountingLinear(50, 40, rng=0, dtype=np.float64)             # 2000 weights
    check_module(layer, randn(2, 50), max_coords=10, verbose=False)
    assert CountingLinear.calls == 1 + 2 * (10 + 10 + 10)             # input, weight, bias: 10 coordinates each


def test_check_detects_gradients_rebound_instead_of_written_in_place():
    class Rebinds(Module):
        def __init__(self):
            super().__init__()
            self.add_param("a", np.ones(3))

        def forward(self, x):
            self._x = x
            return self.params["a"] * x

        def backward(self, dy):
            self.grads = {"a": dy * self._x}                           # wrong: the optimiser's reference goes stale
            return dy * self.params["a"]

    with pytest.raises(AssertionError, match=r"self.grads\[k\]\[\.\.\.\] = value"):
        assert_gradients_ok(Rebinds(), randn(3))


def test_in_a_sequence_the_hint_names_the_layers_where_the_error_can_enter():
    """A wrong GELU backward spoils layer 0's gradients too; the hint must not blame Linear's formula alone."""
    from tinydiff.nn import Sequential

    net = Sequential(Linear(2, 8, rng=0, dtype=np.float64), GELUWithoutChainRule(), Linear(8, 1, rng=1, dtype=np.float64))
    report = check_module(net, randn(5, 2), verbose=False)
    assert set(report.failures()) == {"input0", "layers.0.weight", "layers.0.bias"}
    for name in report.failures():
        assert "layers.0 (Linear), layers.1 (GELUWithoutChainRule)" in report.hints[name]
        assert "layers.2's gradients are right" in report.hints[name]
        assert "dW = dy^T x" not in report.hints[name]


def test_in_a_sequence_a_single_candidate_layer_is_named_alone():
    from tinydiff.nn import Sequential

    net = Sequential(Linear(2, 8, rng=0, dtype=np.float64), GELU(), DoubledLinear(8, 1, rng=1, dtype=np.float64))
    report = check_module(net, randn(5, 2), verbose=False)
    assert "layers.2.weight" in report.failures()
    assert report.hints["layers.2.weight"].startswith("the error enters in layers.2 (DoubledLinear)")


def test_central_differences_gives_the_derivative_restores_z_and_follows_coords():
    from tinydiff.nn.gradcheck import central_differences

    z = np.random.default_rng(0).standard_normal((3, 4))
    before = z.copy()
    full = central_differences(lambda: float(np.sum(z ** 3)), z)
    assert full.shape == z.shape
    np.testing.assert_allclose(full, 3 * z ** 2, rtol=1e-8, atol=1e-9)
    np.testing.assert_array_equal(z, before)                            # every nudge undone
    some = central_differences(lambda: float(np.sum(z ** 3)), z, coords=[7, 0], eps=1e-5)
    np.testing.assert_allclose(some, 3 * z.reshape(-1)[[7, 0]] ** 2, rtol=1e-8)
    with pytest.raises(ValueError, match="contiguous"):
        central_differences(lambda: 0.0, z.T)          # its reshape(-1) is a copy: nudges would be lost
