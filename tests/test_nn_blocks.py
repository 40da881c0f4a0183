"""ResBlock and SelfAttention2d: gradient checks for every input and parameter, shapes, dtypes and the residual."""

import numpy as np
import pytest

from tinydiff.nn.attention import SelfAttention2d
from tinydiff.nn.blocks import ResBlock
from tinydiff.nn.gradcheck import assert_gradients_ok


def _x(shape, seed=11, dtype=np.float64):
    # not seed 0: check_module draws its output projection from seed 0
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _randomise(module, seed=3, std=0.5):
    # GroupNorm starts at weight 1, bias 0: move every parameter so that no gradient is trivially simple
    rng = np.random.default_rng(seed)
    for p in module.parameters().values():
        p += std * rng.standard_normal(p.shape)
    return module


@pytest.mark.parametrize("in_ch,out_ch", [(4, 4), (2, 4)])
def test_resblock_passes_gradient_check_for_x_emb_and_all_parameters(in_ch, out_ch):
    block = _randomise(ResBlock(in_ch, out_ch, emb_dim=3, num_groups=2, rng=0, dtype=np.float64))
    report = assert_gradients_ok(block, _x((2, in_ch, 5, 6)), _x((2, 3), seed=12), rtol=1e-6, max_coords=25)
    assert {"input0", "input1", "emb_proj.weight", "conv2.weight", "norm1.bias"} <= set(report.errors)
    assert ("skip.weight" in report.errors) == (in_ch != out_ch)


def test_resblock_output_shape_and_dtype():
    block = ResBlock(2, 4, emb_dim=3, num_groups=2, rng=0)
    y = block(_x((2, 2, 6, 6), dtype=np.float32), _x((2, 3), dtype=np.float32))
    dx, demb = block.backward(np.ones_like(y))
    assert y.shape == (2, 4, 6, 6) and dx.shape == (2, 2, 6, 6) and demb.shape == (2, 3)
    assert y.dtype == dx.dtype == demb.dtype == np.float32


def test_resblock_embedding_changes_the_output():
    block = ResBlock(4, 4, emb_dim=3, num_groups=2, rng=0, dtype=np.float64)
    x = _x((1, 4, 4, 4))
    assert not np.allclose(block(x, _x((1, 3), seed=1)), block(x, _x((1, 3), seed=2)))


def test_resblock_dropout_is_off_in_eval_mode():
    block = ResBlock(4, 4, emb_dim=3, num_groups=2, dropout=0.5, rng=0, dtype=np.float64).eval()
    x, e = _x((2, 4, 4, 4)), _x((2, 3))
    np.testing.assert_array_equal(block(x, e), block(x, e))
    assert_gradients_ok(block, x, e, rtol=1e-6, max_coords=10)


def test_resblock_rejects_an_embedding_of_the_wrong_size():
    with pytest.raises(ValueError, match=r"emb must have shape \(B, emb_dim\) = \(2, 3\)"):
        ResBlock(4, 4, emb_dim=3, num_groups=2, rng=0)(_x((2, 4, 4, 4), dtype=np.float32), _x((2, 5)))


@pytest.mark.parametrize("heads", [1, 2])
def test_self_attention_passes_gradient_check(heads):
    attn = _randomise(SelfAttention2d(4, num_heads=heads, num_groups=2, rng=0, dtype=np.float64))
    assert_gradients_ok(attn, _x((2, 4, 3, 4)), rtol=1e-6, max_coords=30)


def test_self_attention_is_the_identity_when_the_output_projection_is_zero():
    attn = SelfAttention2d(4, rng=0, dtype=np.float64)
    attn.proj.params["weight"][...] = 0
    attn.proj.params["bias"][...] = 0
    x = _x((2, 4, 3, 3))
    np.testing.assert_array_equal(attn(x), x)


def test_self_attention_weights_are_a_softmax_over_positions():
    attn = SelfAttention2d(4, num_heads=2, rng=0, dtype=np.float64)
    attn(_x((2, 4, 7, 7)))
    assert attn._P.shape == (2, 2, 49, 49)
    np.testing.assert_allclose(attn._P.sum(axis=-1), 1.0, rtol=1e-12)
    assert attn._P.min() > 0


def test_self_attention_is_equivariant_to_permuting_positions():
    # attention has no notion of position: shuffling the pixels shuffles the output the same way
    attn = SelfAttention2d(4, rng=0, dtype=np.float64)
    x = _x((1, 4, 3, 3))
    perm = np.random.default_rng(5).permutation(9)
    y_perm = attn(x.reshape(1, 4, 9)[:, :, perm].reshape(x.shape))
    np.testing.assert_allclose(y_perm, attn(x).reshape(1, 4, 9)[:, :, perm].reshape(x.shape), atol=1e-12)


def test_self_attention_keeps_float32():
    attn = SelfAttention2d(8, num_heads=2, rng=0)
    y = attn(_x((2, 8, 7, 7), dtype=np.float32))
    assert y.dtype == attn.backward(np.ones_like(y)).dtype == np.float32


def test_self_attention_rejects_heads_that_do_not_divide_channels():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        SelfAttention2d(6, num_heads=4)
