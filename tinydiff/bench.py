"""The benchmark suite: tinydiff's training step and sampling, timed beside PyTorch CPU on the same network and batch.

    python -m tinydiff bench all --vs-torch           # every benchmark, with PyTorch (pip install torch threadpoolctl)
    python -m tinydiff bench mlp --batch 32 256       # tinydiff alone: ms and GFLOP/s against this machine's GEMM peak
    python -m tinydiff bench --tiny                   # tiny sizes, a few seconds (the test suite runs this)

What is timed, for tinydiff and (``--vs-torch``) for a PyTorch copy of the same network (``bench_torch.py``: same
layers, widths and initial weights, same batch, AdamW with the same hyper-parameters):

    mlp     one training step of MLPDenoiser() (2D, ~99k parameters): forward, MSE loss, backward, clip the gradient
            norm to 1, AdamW update                                             batch 32, 256, 1024
    unet    the same step for UNet(UNetConfig()) on 28x28 images (PyTorch in NCHW and in channels_last)  batch 64, 128
    sample  one denoiser evaluation (no gradients) at batch 64, MLP and U-Net
    conv    the convolution strategies of ``nn/kernels/bench_conv.py`` (tinydiff only)
    start   wall time of a fresh ``python -c`` process that imports tinydiff and runs one MLP training step, twice
            (the second finds Numba's cache warm; the first shows a cold start if the cache was cold)

Honesty first: before timing, one step of each side runs from the same weights on the same batch, and the loss and
every parameter gradient are compared (max over parameters of max|g_tinydiff - g_torch| / max|g_torch|). The bench
stops with an error if they differ by more than float32 round-off allows. The two sides are then timed alternately
(tinydiff, PyTorch, tinydiff, ...) after a warm-up, so both see the same machine load; each sample is the mean over
enough steps to last ~50 ms, and the table gives the median and min-max of the samples and the ratio of medians.

Threads: ``--threads N`` gives BLAS N threads (threadpoolctl, if installed) and PyTorch N threads. tinydiff's Numba
kernels are serial, so the two pools never fight (docs/performance.md, "Threads"). OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE are printed if set, never changed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from tinydiff.threads import blas_info, blas_threads

BENCHMARKS = ("mlp", "unet", "sample", "conv", "start")
TARGETS = {"mlp": 0.5, "unet": 1.0, "sample": 1.0}      # median time ratio tinydiff / PyTorch to reach
GRAD_TOLERANCE = 2e-3                                   # honesty check: float32 round-off through a deep network


# ---- the problems --------------------------------------------------------------------------------------------------
def make_mlp(tiny: bool = False, seed: int = 0):
    from tinydiff.models.mlp import MLPDenoiser

    return MLPDenoiser(width=32, n_blocks=2, emb_dim=16, rng=seed) if tiny else MLPDenoiser(rng=seed)


def make_unet(tiny: bool = False, seed: int = 0):
    from tinydiff.models.unet import UNet, UNetConfig

    cfg = UNetConfig(base_channels=8, channel_mults=(1, 2), num_groups=4, emb_dim=16, image_size=8) if tiny \
        else UNetConfig()
    return UNet(cfg, rng=seed)


def make_batch(model, batch: int, seed: int = 1):
    """x_t, integer steps t in [0, 1000) and a target eps, all float32, from ``seed``."""
    rng = np.random.default_rng(seed)
    shape = (batch, *model.sample_shape) if hasattr(model, "sample_shape") else (batch, model.dim)
    x = rng.standard_normal(shape).astype(np.float32)
    t = rng.integers(0, 1000, size=batch)
    return x, t, rng.standard_normal(shape).astype(np.float32)


@dataclass
class TrainStep:
    """One tinydiff training step on a fixed batch: forward, MSE loss, backward, clip_grad_norm, AdamW (in place)."""

    model: object
    x: np.ndarray
    t: np.ndarray
    target: np.ndarray
    lr: float = 1e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    opt: object = field(init=False)

    def __post_init__(self):
        from tinydiff.nn.optim import AdamW

        self.model.train()
        self.opt = AdamW(self.model.parameters(), self.model.gradients(), lr=self.lr, weight_decay=self.weight_decay)

    def loss_and_gradients(self) -> float:
        from tinydiff.nn.losses import mse_loss

        loss, dy = mse_loss(self.model.forward(self.x, self.t), self.target)
        self.model.backward(dy, input_grad=False)     # a training step needs no dL/dx_t (PyTorch skips it too)
        return loss

    def __call__(self) -> float:
        from tinydiff.nn.optim import clip_grad_norm

        loss = self.loss_and_gradients()
        clip_grad_norm(self.model.gradients(), self.clip)
        self.opt.step()
        return loss


def forward_flops(model, x, t) -> float:
    """Multiply-add flops (2 per MAC) of one forward pass's matrix products: Linear, Conv2d and attention."""
    from tinydiff.nn.attention import SelfAttention2d
    from tinydiff.nn.conv import Conv2d
    from tinydiff.nn.linear import Linear

    model.forward(x, t)
    total = 0.0
    for m in model.modules():
        if isinstance(m, Linear) and m._x is not None:
            total += 2.0 * m._x.shape[0] * m.in_features * m.out_features
        elif isinstance(m, Conv2d) and m._x_shape is not None:
            B, O, Ho, Wo = m.output_shape(m._x_shape)
            total += 2.0 * B * O * Ho * Wo * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, SelfAttention2d) and m._P is not None:
            B, nh, N, _ = m._P.shape
            total += 2.0 * 2 * B * N * N * m.channels            # S = q^T k and o = v P^T
    return total


# ---- timing ----------------------------------------------------------------------------------------------------------
def time_alternating(fns: dict, repeats: int = 7, warmup: int = 2, sample_seconds: float = 0.05) -> dict:
    """name -> list of per-call seconds. Each call is warmed up, then the callables take turns, ``repeats`` rounds;
    one sample is the mean over n calls, n chosen so that a sample lasts about ``sample_seconds``."""
    calls = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        calls[name] = max(1, int(sample_seconds / max(time.perf_counter() - t0, 1e-6)))
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            out[name].append((time.perf_counter() - t0) / calls[name])
    return out


def gemm_peak(n: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a float32 n x n x n matrix product (BLAS, current thread setting): the machine's practical peak."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    c = np.empty_like(a)
    times = time_alternating({"gemm": lambda: np.matmul(a, b, out=c)}, repeats=repeats, warmup=1)["gemm"]
    return 2.0 * n**3 / float(np.median(times)) / 1e9


def machine_report(threads: int | None) -> list[str]:
    """Lines describing the machine, the libraries and who gets the cores."""
    import numba

    lines = [f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
             f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
             f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__} "
             f"(NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}; tinydiff's kernels are serial, so Numba's pool is "
             "never started)",
             f"{blas_info()}   [BLAS threads for this run: {threads if threads else 'unchanged'}]"]
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"{var}={os.environ[var]} (set in the environment; the bench never changes it)")
    return lines


# ---- results ---------------------------------------------------------------------------------------------------------
@dataclass
class Row:
    """One line of the table: a benchmark at one batch size."""

    bench: str
    batch: int
    ours: list                   # seconds per call, one per sample
    torch: list | None = None
    gflop: float | None = None   # per call, for GFLOP/s
    note: str = ""

    def ratio(self) -> float | None:
        return float(np.median(self.ours) / np.median(self.torch)) if self.torch else None


def _ms(samples) -> str:
    s = 1e3 * np.asarray(samples)
    return f"{np.median(s):.3g} [{s.min():.3g}-{s.max():.3g}]"


def format_table(rows: list[Row], peak: float | None = None) -> str:
    """A Markdown table: ms as median [min-max], ratio of medians, GFLOP/s of tinydiff's matrix products."""
    lines = ["| benchmark | batch | tinydiff ms | PyTorch ms | ratio | target | tinydiff GFLOP/s | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio, target = r.ratio(), TARGETS.get(r.bench.split()[0])
        verdict = "" if ratio is None or target is None else (" ok" if ratio <= target else " MISSED")
        gf = ""
        if r.gflop:
            rate = r.gflop / float(np.median(r.ours))
            gf = f"{rate:.0f}" + (f" ({100 * rate / peak:.0f}% of peak)" if peak else "")
        lines.append(f"| {r.bench} | {r.batch} | {_ms(r.ours)} | {_ms(r.torch) if r.torch else '-'} | "
                     f"{f'{ratio:.2f}' if ratio is not None else '-'}{verdict} | "
                     f"{f'<= {target}' if target else '-'} | {gf or '-'} | {r.note} |")
    return "\n".join(lines)


# ---- the benchmarks --------------------------------------------------------------------------------------------------
def _train_rows(name, make_model, batches, repeats, vs_torch, formats=("NCHW",), tiny=False) -> list[Row]:
    rows = []
    for batch in batches:
        model = make_model(tiny)
        x, t, target = make_batch(model, batch)
        ours = TrainStep(model, x, t, target)
        flops = 3 * forward_flops(model, x, t)        # forward + dL/dW + dL/dh, each one pass of products
        if not vs_torch:
            rows.append(Row(name, batch, time_alternating({"ours": ours}, repeats)["ours"], gflop=flops / 1e9))
            continue
        from tinydiff import bench_torch

        for fmt in formats:
            theirs = bench_torch.TorchTrainStep(model, x, t, target, channels_last=(fmt == "channels_last"))
            diff = bench_torch.honesty_check(ours, theirs)      # on fresh weights, before any update
            if diff > GRAD_TOLERANCE:
                raise RuntimeError(f"bench {name} batch {batch}: tinydiff and PyTorch disagree on the loss or a "
                                   f"gradient (max relative difference {diff:.2e} > {GRAD_TOLERANCE:g}); the networks "
                                   "are not the same, so their timings would not compare the same work")
            times = time_alternating({"ours": ours, "torch": theirs}, repeats)
            label = name if len(formats) == 1 else f"{name} ({fmt})"
            rows.append(Row(label, batch, times["ours"], times["torch"], flops / 1e9, f"grad diff {diff:.1e}"))
    return rows


def _sample_rows(batch, repeats, vs_torch, tiny) -> list[Row]:
    rows = []
    for label, make_model in (("sample mlp", make_mlp), ("sample unet", make_unet)):
        model = make_model(tiny).eval()
        x, t, _ = make_batch(model, batch)
        fns = {"ours": lambda m=model: m.forward(x, t)}
        flops = forward_flops(model, x, t)
        if vs_torch:
            from tinydiff import bench_torch

            fns["torch"] = bench_torch.TorchForward(model, x, t)
            diff = float(np.max(np.abs(fns["ours"]() - fns["torch"]())) / np.max(np.abs(fns["torch"]())))
            if diff > GRAD_TOLERANCE:
                raise RuntimeError(f"bench {label}: outputs differ by {diff:.2e} (relative); not the same network")
        times = time_alternating(fns, repeats)
        rows.append(Row(label, batch, times["ours"], times.get("torch"), flops / 1e9))
    return rows


START_CODE = """
import time; t0 = time.perf_counter()
import numpy as np
from tinydiff.bench import TrainStep, make_batch, make_mlp
model = make_mlp()
TrainStep(model, *make_batch(model, 256))()
print(time.perf_counter() - t0)
"""

TORCH_START_CODE = """
import time; t0 = time.perf_counter()
import torch
model = torch.nn.Sequential(torch.nn.Linear(384, 128), torch.nn.GELU(), torch.nn.Linear(128, 2))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loss = ((model(torch.randn(256, 384)) - torch.randn(256, 2)) ** 2).mean(); loss.backward(); opt.step()
print(time.perf_counter() - t0)
"""


def cold_start(vs_torch: bool = False) -> list[str]:
    """Wall time of two fresh processes that import tinydiff and run one MLP training step (batch 256)."""
    lines = []
    runs = [("tinydiff", START_CODE)] + ([("PyTorch (a 2-layer MLP step)", TORCH_START_CODE)] if vs_torch else [])
    for label, code in runs:
        walls = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
            walls.append(time.perf_counter() - t0)
        target = " (target for tinydiff's second: < 2 s)" if label == "tinydiff" else ""
        lines.append(f"cold start, {label}: first process {walls[0]:.2f} s, second process {walls[1]:.2f} s{target}")
    return lines


def run(benchmarks=("mlp",), threads: int | None = None, repeats: int = 7, vs_torch: bool = False,
        batches: list[int] | None = None, tiny: bool = False, out=print) -> list[Row]:
    """Run the named benchmarks, printing the machine report and the table through ``out``; return the rows."""
    benchmarks = BENCHMARKS if "all" in benchmarks else tuple(benchmarks)
    if vs_torch:
        from tinydiff import bench_torch

        out(bench_torch.setup(threads))
    rows = []
    with blas_threads(threads):
        for line in machine_report(threads):
            out(line)
        peak = gemm_peak(256 if tiny else 1024)
        out(f"float32 GEMM peak ({256 if tiny else 1024}^3, BLAS): {peak:.0f} GFLOP/s")
        small = [4] if tiny else None
        if "mlp" in benchmarks:
            rows += _train_rows("mlp", make_mlp, batches or small or [32, 256, 1024], repeats, vs_torch, tiny=tiny)
        if "unet" in benchmarks:
            rows += _train_rows("unet", make_unet, batches or small or [64, 128], repeats, vs_torch,
                                formats=("NCHW", "channels_last") if vs_torch else ("NCHW",), tiny=tiny)
        if "sample" in benchmarks:
            rows += _sample_rows((batches or small or [64])[0], repeats, vs_torch, tiny)
        out(format_table(rows, peak))
        if "conv" in benchmarks:
            from tinydiff.nn.kernels.bench_conv import bench_conv
            from tinydiff.nn.kernels.bench_conv import format_table as conv_table

            B = (batches or small or [64])[0]
            out(f"conv 3x3, 32->32 channels, 28x28, batch {B}, float32 (nn/kernels/bench_conv.py):")
            out(conv_table(bench_conv(B=B, repeats=min(repeats, 5), threads=(threads or 1,),
                                      strategies=("im2col+BLAS NCHW",))))
    if "start" in benchmarks:
        for line in cold_start(vs_torch):
            out(line)
    return rows
