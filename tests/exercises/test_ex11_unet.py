"""Exercises 11.1 (ResBlock backward through the scale-shift) and 11.2 (attention backward)
(chapters/11_images_and_the_unet.py). Both are graded by the float64 gradient check."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_gradients_ok
from tinydiff.nn.attention import SelfAttention2d
from tinydiff.nn.blocks import ResBlock
from tinydiff.nn.module import Module


class _WithEmbedding(Module):
    """A ResBlock whose embedding is a parameter, so that the gradient check covers demb as well as dx."""

    def __init__(self, block, emb):
        super().__init__()
        self.block = block
        self.add_param("emb", emb)

    def forward(self, x):
        return self.block.forward(x, self.params["emb"])

    def backward(self, dy):
        dx, demb = self.block.backward(dy)
        self.grads["emb"][...] = demb
        return dx


def _resblock(in_ch, out_ch):
    rng = np.random.default_rng(0)
    block = ResBlock(in_ch, out_ch, emb_dim=3, num_groups=2, rng=1, dtype=np.float64)
    block.norm2.params["weight"][...] = rng.standard_normal(out_ch) + 1.0          # not all ones
    return _WithEmbedding(block, rng.standard_normal((2, 3))), rng.standard_normal((2, in_ch, 3, 3))


@pytest.mark.ex11_1
def test_resblock_backward_passes_the_gradient_check():
    module, x = _resblock(2, 4)
    expect_gradients_ok("ex11_1", module, x)


@pytest.mark.ex11_1
def test_resblock_backward_with_equal_channels_passes_the_gradient_check():
    module, x = _resblock(4, 4)
    expect_gradients_ok("ex11_1", module, x)


@pytest.mark.ex11_2
@pytest.mark.parametrize("heads", [1, 2])
def test_attention_backward_passes_the_gradient_check(heads):
    rng = np.random.default_rng(0)
    layer = SelfAttention2d(4, num_heads=heads, num_groups=2, rng=2, dtype=np.float64)
    layer.qkv.params["weight"][...] *= 3.0                            # sharper softmax rows: a wrong dS shows
    expect_gradients_ok("ex11_2", layer, rng.standard_normal((2, 4, 3, 2)))
