"""The parallel kernels (the same templates and code as the serial ones, compiled with ``prange``: kernels/pconv.py,
kernels/pnorm.py) give the serial kernels' results on any number of threads, and so does a whole U-Net training step
under ``tinydiff.threads.use_threads(2)``. Each parallel part writes its own outputs and partial sums are added in a
fixed order, so the results are the same bits. Under NUMBA_DISABLE_JIT=1 ``prange`` is ``range`` and the same tests
run as plain Python."""

import os

import numpy as np
import pytest

from tests.test_kernels_pconv import CASES, run_p
from tests.test_kernels_pnorm import run as run_norm
from tinydiff.nn.kernels.pconv import wgrad_kernel, wgrad_source
from tinydiff.nn.kernels.playout import PLayout
from tinydiff.threads import kernel_threads, use_threads

compiled_only = pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                                   reason="the U-Net's fast path runs compiled only")
# the U-Net's channel counts (24 -> 48 stride 2, a 96 -> 48 up-path block at 7 x 7, a 72 -> 24 skip), on small images
UNET_CONVS = [(1, 24, 24, 8, 8, 3, 1), (1, 24, 48, 8, 8, 3, 2), (1, 96, 48, 7, 7, 3, 1), (1, 72, 24, 8, 8, 1, 1)]


def serial_and_2_threads(fn, *args):
    """fn(*args) with the serial kernels, then with the parallel ones on 2 threads. BLAS keeps 1 thread both times (as
    `train` gives it for the U-Net): OpenBLAS on 2 threads splits its sums differently, which is its rounding, not ours."""
    with use_threads(1, blas=1):
        one = fn(*args)
    with use_threads(2, blas=1):
        assert kernel_threads() == 2
        two = fn(*args)
    return one, two


@pytest.mark.parametrize("case", CASES + UNET_CONVS, ids=[f"B{c[0]}C{c[1]}O{c[2]}_{c[3]}x{c[4]}_k{c[5]}s{c[6]}"
                                                         for c in CASES + UNET_CONVS])
def test_parallel_convolution_gives_the_serial_bits(case):
    one, two = serial_and_2_threads(run_p, *case)
    for name in ("y", "dx", "dw", "db"):
        np.testing.assert_array_equal(two[name][0], one[name][0], err_msg=f"{name} differs on 2 threads")


@pytest.mark.parametrize("B, C, G, H, W", [(3, 8, 4, 5, 7), (1, 6, 3, 1, 1), (5, 24, 8, 7, 7)])
def test_parallel_fused_groupnorm_gives_the_serial_bits(B, C, G, H, W):
    one, two = serial_and_2_threads(run_norm, B, C, G, H, W)
    for name, a, b in zip(("X", "dY", "ds", "dt", "dgamma", "dbeta"), one[0], two[0]):
        np.testing.assert_array_equal(b, a, err_msg=f"{name} differs on 2 threads")


def test_weight_gradient_does_not_depend_on_how_its_outputs_are_split():
    rng = np.random.default_rng(0)
    lay, C, O = PLayout(2, 5, 7), 6, 12
    dy = lay.to_p(rng.standard_normal((2, O, 5, 7))).reshape(-1)
    x = lay.to_p(rng.standard_normal((2, C, 5, 7))).reshape(-1)
    tplane, toff = np.zeros(9, np.int64), np.arange(9, dtype=np.int64) - 4
    dws = []
    for parts in (1, 2, 3):
        dw = np.zeros((O, C, 9), np.float32)
        wgrad_kernel(4, 6)(dy, x, dw, lay.L, lay.start, lay.end, C, O, tplane, toff, parts)
        dws.append(dw)
    np.testing.assert_array_equal(dws[1], dws[0])
    np.testing.assert_array_equal(dws[2], dws[0])


def test_the_parallel_template_differs_from_the_serial_one_only_in_its_loop_and_name():
    serial, parallel = wgrad_source(4, 6), wgrad_source(4, 6, parallel=True)
    assert "prange(parts)" in parallel and "parallel=True" in parallel and "def wgrad_p_o4_c6_par(" in parallel
    assert parallel.replace("prange", "range").replace(", parallel=True", "").replace("_par(", "(") == serial


@compiled_only
def test_a_unet_training_step_on_2_threads_gives_the_1_thread_loss_and_gradients():
    from tests.test_models_unet_p import SHIPPED, one_step

    one, two = serial_and_2_threads(one_step, SHIPPED, True, 8)
    assert two[1] == one[1], "loss"
    np.testing.assert_array_equal(two[0], one[0])
    # the gradients to float32 round-off: Numba compiles a prange body as a separate function, which LLVM may vectorise
    # (and contract into FMAs) differently from the serial loop, so the last bits can differ (seen on dL/dx: 7e-10)
    assert np.abs(two[2] - one[2]).max() <= 1e-5 * np.abs(one[2]).max(), "dL/dx"
    for k in one[3]:
        assert np.abs(two[3][k] - one[3][k]).max() <= 1e-5 * max(np.abs(one[3][k]).max(), 1e-12), f"gradient of {k}"


def test_use_threads_restores_the_kernel_threads_and_caps_them_at_what_numba_allows():
    from tinydiff.threads import available_kernel_threads

    assert kernel_threads() == 1
    with pytest.warns(RuntimeWarning, match="at most"):
        with use_threads(available_kernel_threads() + 1):
            assert kernel_threads() == available_kernel_threads()
    assert kernel_threads() == 1
    with pytest.raises(ValueError, match=">= 1"):
        with use_threads(0):
            pass
