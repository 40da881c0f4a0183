"""tinydiff's own exceptions. Catch ``TinydiffError`` to catch every error tinydiff raises on purpose.

Each subclass also derives from the built-in exception a caller would expect (``ValueError``, ``FileNotFoundError``),
so ``except ValueError`` keeps working for code that does not know about tinydiff.
"""


class TinydiffError(Exception):
    """Base class of every error tinydiff raises on purpose (bad input, missing or corrupt data, ...)."""


class DatasetError(TinydiffError, ValueError):
    """A data set could not be made, found, read or verified (unknown name, bad file, wrong digest, ...)."""
