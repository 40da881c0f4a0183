"""One way to say "random": every random thing in tinydiff takes ``rng``, which may be None, an int seed or a Generator.

    make_rng(None)          # a fresh, unpredictable Generator (fine for exploring, not for tests)
    make_rng(0)             # the same stream every time: use this in tests and chapters
    make_rng(generator)     # returned as is, so a caller can share one stream across several layers
"""

from __future__ import annotations

import numpy as np


def make_rng(rng: None | int | np.random.Generator = None) -> np.random.Generator:
    """Turn ``rng`` (None, an int seed or a ``numpy.random.Generator``) into a ``numpy.random.Generator``."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(
        f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}. "
        "Use np.random.default_rng(seed) to make a Generator (the old np.random.RandomState is not accepted)."
    )
