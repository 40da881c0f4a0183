"""The benchmarks: tinydiff's training step and sampling, timed beside PyTorch CPU on the same network and batch.

    python -m tinydiff bench all --vs-torch           # every benchmark, with PyTorch (pip install torch threadpoolctl)
    python -m tinydiff bench mlp --batch 32 256       # tinydiff alone: ms and GFLOP/s against this machine's GEMM peak
    python -m tinydiff bench --tiny                   # tiny sizes, a few seconds (the test suite runs this)
    python -m tinydiff.bench.conv                     # the convolution strategies, pass by pass
    python -m tinydiff.bench.nfe                      # sampler accuracy against model evaluations (docs/samplers.md)

One module per concern:

    timing.py        the one timer: callables take turns; wall and CPU time; median [min-max]
    machine.py       the one machine report: CPU, cores, load, versions, BLAS kernel and threads
    steps.py         the networks, the batch, the training step and evaluation that are timed, their flop counts
    table.py         a Row per benchmark and batch; the Markdown table with ratios and targets
    torch_models.py  PyTorch copies of the networks, weights copied by name (the optional ``[bench]`` extra)
    conv.py          convolution strategies (im2col + BLAS, direct loops, NHWC), ms and GFLOP/s per pass
    start.py         start-up time of a fresh process
    threads.py       a U-Net step on 1 and 2 threads, alternating in one process (``bench threads``)
    profile.py       where the time of ``Trainer.step`` goes (cProfile): ``python -m tinydiff quality --profile``
    nfe.py           few-step accuracy of the samplers (distance to the data against model evaluations)

The two sides are timed alternately (tinydiff, PyTorch, tinydiff, ...) after a warm-up, so both see the same machine
load; each sample is the mean over enough steps to last ~50 ms, and the table gives the median and min-max of the
samples and the ratio of medians, of wall time and of CPU time.

Threads: ``--threads N`` gives tinydiff N threads (``tinydiff.threads.use_threads``: the U-Net's parallel Numba
kernels on N threads, and BLAS N threads) and PyTorch N threads; the line "threads in use while timing" reports what
each pool really had; the U-Net rows (training and sampling) run with one BLAS thread beside N kernel threads, as
``train --threads N`` and ``sample --threads N`` do (docs/performance.md, "Threads"). OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are printed if set, never changed.
"""

from __future__ import annotations

from tinydiff.bench.machine import machine_report
from tinydiff.bench.steps import GRAD_TOLERANCE, TrainStep, forward_flops, make_batch, make_mlp, make_unet
from tinydiff.bench.table import TARGETS, Row, format_table
from tinydiff.bench.timing import Samples, gemm_peak, time_alternating
from tinydiff.threads import blas_share, threads_report, use_threads

__all__ = ["run", "BENCHMARKS", "TARGETS", "GRAD_TOLERANCE", "TrainStep", "Row", "Samples", "format_table",
           "forward_flops", "gemm_peak", "machine_report", "make_batch", "make_mlp", "make_unet", "time_alternating"]

BENCHMARKS = ("mlp", "unet", "sample", "conv", "start")           # "all"; "threads" only when named


def run(benchmarks=("mlp",), threads: int | None = None, repeats: int = 7, vs_torch: bool = False,
        batches: list[int] | None = None, tiny: bool = False, out=print) -> list[Row]:
    """Run the named benchmarks, printing the machine report and the table through ``out``; return the rows."""
    from tinydiff.bench.steps import sample_rows, train_rows

    benchmarks = BENCHMARKS if "all" in benchmarks else tuple(benchmarks)
    if vs_torch:
        from tinydiff.bench import torch_models

        out(torch_models.setup(threads))
    rows = []
    with use_threads(threads):
        for line in machine_report(threads):
            out(line)
        peak = gemm_peak(256 if tiny else 1024)
        out(f"float32 GEMM peak ({256 if tiny else 1024}^3, BLAS): {peak:.0f} GFLOP/s")
        small = [4] if tiny else None
        if "mlp" in benchmarks:
            rows += train_rows("mlp", make_mlp, batches or small or [32, 256, 1024], repeats, vs_torch, tiny=tiny)
        if "unet" in benchmarks:
            with use_threads(threads, blas_share(threads, "unet") if threads else None):    # what `train` gives it
                out(f"unet rows, threads in use while timing: {threads_report()}")
                rows += train_rows("unet", make_unet, batches or small or [64, 128], repeats, vs_torch,
                                   formats=("NCHW", "channels_last") if vs_torch else ("NCHW",), tiny=tiny)
        if "sample" in benchmarks:
            rows += sample_rows((batches or small or [64])[0], repeats, vs_torch, tiny, threads)
        out(f"mlp rows, threads in use while timing: {threads_report()}"
            + ("" if not threads or "sample" not in benchmarks else
               f"; sample rows as `sample --threads {threads}` runs them: the U-Net's kernels on {threads} "
               f"threads with BLAS {blas_share(threads, 'unet')}, the MLP's BLAS on {blas_share(threads, 'mlp')}"))
        out(format_table(rows, peak))
        if "conv" in benchmarks:
            from tinydiff.bench.conv import bench_conv
            from tinydiff.bench.conv import format_table as conv_table

            B = (batches or small or [64])[0]
            out(f"conv 3x3, 32->32 channels, 28x28, batch {B}, float32 (tinydiff/bench/conv.py):")
            out(conv_table(bench_conv(B=B, repeats=min(repeats, 5), threads=(threads or 1,),
                                      strategies=("im2col+BLAS NCHW",))))
    if "threads" in benchmarks:
        from tinydiff.bench.threads import compare_threads

        compare_threads((batches or small or [64])[0], repeats, tiny, out)
    if "start" in benchmarks:
        from tinydiff.bench.start import cold_start

        for line in cold_start(vs_torch):
            out(line)
    return rows
