"""``python -m tinydiff bench``: time tinydiff's training step and sampling, optionally beside PyTorch (``--vs-torch``).

What each benchmark measures, and how the comparison is kept honest, is in ``tinydiff/bench/`` (its ``__init__`` docstring maps the modules).
"""

from __future__ import annotations

import argparse

from tinydiff.commands.common import positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("benchmarks", nargs="*", default=["mlp"],
                   choices=["mlp", "unet", "sample", "conv", "start", "threads", "all"],
                   help="what to time (default: mlp); several may be given; threads: a U-Net step on 1 and 2 threads")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="threads for each side: tinydiff's parallel kernels and BLAS (threadpoolctl), and PyTorch's "
                        "(default 1; see docs/performance.md, \"Threads\")")
    p.add_argument("--repeats", type=positive_int, default=7, help="timed samples per side after warm-up (default 7)")
    p.add_argument("--vs-torch", action="store_true", help="also time a PyTorch copy of each network (needs torch)")
    p.add_argument("--batch", type=positive_int, nargs="+", default=None,
                   help="batch sizes (default: mlp 32 256 1024, unet 64 128, sample 64)")
    p.add_argument("--tiny", action="store_true", help="tiny networks and batch 4: a smoke test in seconds")


def run(args) -> int:
    from tinydiff import bench

    if args.vs_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("error: --vs-torch needs PyTorch: pip install torch (or pip install 'tinydiff[bench]')")
            return 2
    bench.run(args.benchmarks, threads=args.threads, repeats=args.repeats, vs_torch=args.vs_torch,
              batches=args.batch, tiny=args.tiny)
    return 0
