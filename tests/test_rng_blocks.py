"""rng.BlockGenerator: each block of samples has its own stream, so any cut into batches gives the same numbers."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tinydiff.rng import BlockGenerator


def draw_in_batches(seed, n, block, batch, calls=3):
    """``calls`` draws of (n, 2), made batch by batch (a batch is a whole number of blocks), stitched together."""
    out = np.empty((calls, n, 2))
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        g = BlockGenerator(seed, start, stop, block)
        for c in range(calls):
            out[c, start:stop] = g.standard_normal((stop - start, 2))
    return out


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 50), block=st.integers(1, 8), blocks=st.integers(1, 8))
def test_any_batching_gives_the_same_numbers(seed, n, block, blocks):
    np.testing.assert_array_equal(draw_in_batches(seed, n, block, block * blocks), draw_in_batches(seed, n, block, n))


def test_one_block_is_the_plain_seeded_generator():
    np.testing.assert_array_equal(BlockGenerator(7, 0, 5, 8).standard_normal((5, 3)),
                                  np.random.default_rng(7).standard_normal((5, 3)))


def test_blocks_differ_from_each_other():
    x = BlockGenerator(0, 0, 8, 4).standard_normal((8, 1000))
    assert abs(np.corrcoef(x[0], x[4])[0, 1]) < 0.15 and not np.array_equal(x[:4], x[4:])


def test_a_batch_must_start_on_a_block_boundary():
    with pytest.raises(ValueError, match="multiple of the block size 4"):
        BlockGenerator(0, 2, 6, 4)
