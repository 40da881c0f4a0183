"""tinydiff: diffusion models from scratch in NumPy and Numba.

Start with the forward process::

    from tinydiff.schedules import NoiseSchedule
    from tinydiff.diffusion import q_sample

and read ``chapters/01_forward_process.py``.
"""

__version__ = "0.1.0"
