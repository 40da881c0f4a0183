"""One way to say "random": every random thing in tinydiff takes ``rng``, which may be None, an int seed or a Generator.

    make_rng(None)          # a fresh, unpredictable Generator (fine for exploring, not for tests)
    make_rng(0)             # the same stream every time: use this in tests and chapters
    make_rng(generator)     # returned as is, so a caller can share one stream across several layers

Drawing many samples in batches, :class:`BlockGenerator` gives every block of samples its own stream, so that the
samples do not depend on how they are batched.
"""

from __future__ import annotations

import numpy as np


def make_rng(rng: None | int | np.random.Generator = None) -> np.random.Generator:
    """Turn ``rng`` (None, an int seed or a ``numpy.random.Generator``) into a ``numpy.random.Generator``.
    (A :class:`BlockGenerator` is also returned as is.)"""
    if isinstance(rng, (np.random.Generator, BlockGenerator)):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}. "
        "Use np.random.default_rng(seed) to make a Generator (the old np.random.RandomState is not accepted)."
    )


class BlockGenerator:
    """The random numbers of samples start..stop-1 of a draw of many, the same whatever batches the draw is cut into.

    Sample i draws all its noise from the stream of its block k = i // block: block 0 is ``default_rng(seed)`` itself
    (so a draw of at most one block is exactly the one-batch draw ``rng=seed``), block k >= 1 the (k-1)-th child of
    the seed, ``SeedSequence(seed, spawn_key=(k - 1,))``: independent streams (numpy's ``spawn``), made only for the
    blocks of this batch. A batch must start on a block boundary. ``standard_normal((B, ...))`` with B = stop - start
    concatenates each block's draw of its rows, in order, so every call gives each sample the same numbers it gets
    in any other batching.
    """

    def __init__(self, seed: int, start: int, stop: int, block: int):
        if start % block:
            raise ValueError(f"a batch must start at a multiple of the block size {block}, got {start}")
        self.sizes = [min(stop, k + block) - k for k in range(start, stop, block)]
        self.generators = [np.random.default_rng(seed if k == 0 else np.random.SeedSequence(seed, spawn_key=(k - 1,)))
                           for k in range(start // block, start // block + len(self.sizes))]

    def standard_normal(self, size, dtype=np.float64):
        size = tuple(size)
        if size[0] != sum(self.sizes):
            raise ValueError(f"this BlockGenerator draws {sum(self.sizes)} rows, asked for {size[0]}")
        parts = [g.standard_normal((b, *size[1:]), dtype=dtype) for g, b in zip(self.generators, self.sizes)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def seed_for_blocks(rng) -> int:
    """An int seed for :class:`BlockGenerator`: ``rng`` itself if it is one, else drawn from it (a Generator, or None:
    fresh entropy)."""
    if isinstance(rng, (int, np.integer)):
        return int(rng)
    return int(make_rng(rng).integers(2**63))
