"""tinydiff's own exceptions, all in this one file. Catch ``TinydiffError`` to catch every error tinydiff raises on purpose.

Each subclass also derives from the built-in exception a caller would expect (``ValueError``, ``TypeError``,
``FileNotFoundError``), so ``except ValueError`` keeps working for code that does not know about tinydiff. The modules
that raise them re-export them (``tinydiff.checkpoint.CheckpointError`` is this file's ``CheckpointError``).
"""


class TinydiffError(Exception):
    """Base class of every error tinydiff raises on purpose (bad input, missing or corrupt data, ...)."""


# ---- inputs of layers and models ---------------------------------------------------------------------------------
class UsageError(TinydiffError, ValueError):
    """Command-line flags that cannot work together, or with this model (``--guidance`` without ``--label``, ...)."""


class DtypeError(TinydiffError, TypeError):
    """A float array of one precision went into a layer built in another (``tinydiff.nn.module`` states the rule)."""


# ---- data --------------------------------------------------------------------------------------------------------
class DatasetError(TinydiffError, ValueError):
    """A data set could not be made, found, read or verified (unknown name, bad file, wrong digest, ...)."""


class IDXFormatError(DatasetError):
    """A file is not a valid IDX file (bad magic, truncated, extra bytes, corrupt gzip, wrong shape)."""


class ChecksumError(DatasetError):
    """A file parsed, but its SHA-256 is not the original's: corrupt or a different data set."""


class MNISTNotFoundError(DatasetError, FileNotFoundError):
    """The MNIST files are not on disk and could not be downloaded. The message says where to put them."""


# ---- files tinydiff writes and reads -------------------------------------------------------------------------------
class CheckpointError(TinydiffError, ValueError):
    """A checkpoint is missing, unreadable, corrupt or from an incompatible version."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint could not be written (disk full, no permission); the previous one is untouched."""


class RunError(TinydiffError, ValueError):
    """A run folder (``train --out``) cannot be used: it holds another run, another process is training in it, it is
    not writable, or ``--resume`` asks for settings that contradict the stored run."""


class ClassifierError(TinydiffError, ValueError):
    """The classifier's weights are missing, corrupt, or not the file whose digest tinydiff expects."""


# ---- metrics and exercises -----------------------------------------------------------------------------------------
class PointCloudError(TinydiffError, ValueError):
    """The inputs of a point-cloud metric have the wrong shape, size or values."""


class MarkerError(TinydiffError, ValueError):
    """An exercise-marker problem, reported as ``file:line: what is wrong and how to fix it``."""
