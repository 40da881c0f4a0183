"""The padded-plane (P) layout and its register-blocked convolution kernels (kernels/playout.py, kernels/pconv.py),
against the reference: Conv2d's im2col path in float64 (so the P kernels' float32 results must agree to float32
round-off), Upsample, and plain NumPy indexing for the layout. Every stride, padding and kernel size the U-Net uses,
odd shapes, channel counts no register block divides, and tiny images. Runs under NUMBA_DISABLE_JIT=1 too (the
kernels then run as Python on simd.py's NumPy fallback)."""

import numpy as np
import pytest

from tinydiff.nn.conv import Conv2d, Upsample
from tinydiff.nn.kernels.playout import (
    PLayout,
    merge_phases,
    split_phases,
    upsample2_p,
    upsample2_p_backward,
)
from tinydiff.nn.kernels.pconv import PConv, conv_source, wgrad_source
from tinydiff.threads import use_threads


def rel(a, ref):
    return float(np.abs(a - ref).max() / max(np.abs(ref).max(), 1e-30))


def random_p(lay, C, seed=0):
    """A P array holding random pixels (zero pads) and the same data in NCHW."""
    x = np.random.default_rng(seed).standard_normal((lay.B, C, lay.H, lay.W)).astype(np.float32)
    return lay.to_p(x), x


# ---- the layout ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("B, C, H, W", [(1, 1, 1, 1), (2, 3, 5, 7), (3, 2, 28, 28)])
def test_to_p_puts_each_pixel_at_its_documented_position_and_zeros_elsewhere(B, C, H, W):
    lay = PLayout(B, H, W)
    X, x = random_p(lay, C)
    idx = lay.pixel_index()                                              # (B, H, W): M0 + b S + h Wp + w
    np.testing.assert_array_equal(X[:, idx], x.transpose(1, 0, 2, 3))
    assert np.count_nonzero(X * (1 - lay.mask)) == 0, "pads and margins must be 0"
    np.testing.assert_array_equal(lay.mask.sum(), B * H * W)


def test_from_p_inverts_to_p():
    lay = PLayout(2, 6, 3)
    X, x = random_p(lay, 4)
    np.testing.assert_array_equal(lay.from_p(X), x)


def test_layout_margins_hold_every_tap_of_every_computed_block():
    for B, H, W in [(1, 1, 1), (2, 7, 7), (64, 28, 28), (5, 14, 3)]:
        lay = PLayout(B, H, W)
        assert lay.M0 - (lay.Wp + 1) >= 0, "the first block's taps reach back Wp + 1 entries"
        assert lay.end + lay.Wp + 1 + 16 <= lay.L, "the last block's taps reach Wp + 1 + 16 entries past it"
        assert lay.n_out % 64 == 0 and lay.n_out >= B * lay.S


def test_to_p_rejects_an_array_of_another_shape():
    with pytest.raises(ValueError, match="to_p"):
        PLayout(2, 4, 4).to_p(np.zeros((2, 1, 4, 5), np.float32))


# ---- convolutions against Conv2d (im2col + BLAS) in float64 -----------------------------------------------------
CASES = [  # B, C, O, H, W, kernel, stride
    (2, 3, 5, 5, 7, 3, 1),       # odd sizes, channel counts no block size divides
    (1, 1, 4, 1, 1, 3, 1),       # a 1 x 1 image: every tap but the centre reads padding
    (3, 7, 6, 4, 3, 1, 1),       # 1 x 1 convolution (the ResBlock skip)
    (2, 8, 4, 6, 4, 3, 2),       # stride 2 (polyphase), non-square
    (2, 5, 3, 2, 2, 3, 2),       # stride 2 on a 2 x 2 image
    (2, 1, 8, 8, 8, 3, 1),       # the U-Net's first layer (1 input channel)
    (2, 8, 1, 8, 8, 3, 1),       # and its last (1 output channel)
]


def run_p(B, C, O, H, W, k, s, seed=0):
    """One forward and backward of a float64 Conv2d (the reference) and of PConv on float32 copies."""
    rng = np.random.default_rng(seed)
    conv = Conv2d(C, O, k, stride=s, padding=k // 2, rng=seed, dtype=np.float64)
    x = rng.standard_normal((B, C, H, W))
    y = conv.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = conv.backward(dy)
    lay_in = PLayout(B, H, W)
    lay_out = lay_in if s == 1 else PLayout(B, H // 2, W // 2)
    pc = PConv(O, C, k, s, lay_in, lay_out)
    w32, b32 = conv.params["weight"].astype(np.float32), conv.params["bias"].astype(np.float32)
    X = lay_in.to_p(x)
    Y = pc.forward(X, w32, b32, lay_out.zeros(O))
    dX, dw, db = lay_in.zeros(C), np.zeros(w32.shape, np.float32), np.zeros(O, np.float32)
    pc.backward(lay_out.to_p(dy), X, w32, dX, dw, db)
    return dict(y=(lay_out.from_p(Y), y), dx=(lay_in.from_p(dX), dx), dw=(dw, conv.grads["weight"]),
                db=(db, conv.grads["bias"]), pads=(Y * (1 - lay_out.mask), dX * (1 - lay_in.mask)))


@pytest.mark.parametrize("case", CASES, ids=[f"B{c[0]}C{c[1]}O{c[2]}_{c[3]}x{c[4]}_k{c[5]}s{c[6]}" for c in CASES])
def test_p_convolution_matches_im2col_reference(case):
    r = run_p(*case)
    for name in ("y", "dx", "dw", "db"):
        assert rel(*r[name]) < 2e-6, f"{name}: relative error {rel(*r[name]):.1e} against the float64 reference"


@pytest.mark.parametrize("case", CASES[:4])
def test_p_convolution_leaves_pads_zero(case):
    y_pads, dx_pads = run_p(*case)["pads"]
    assert np.count_nonzero(y_pads) == 0 and np.count_nonzero(dx_pads) == 0


def test_p_convolution_at_the_unet_sizes():
    for C, O, H, s in [(24, 24, 28, 1), (48, 48, 14, 2), (96, 48, 7, 1)]:
        r = run_p(2, C, O, H, H, 3, s)
        assert max(rel(*r[n]) for n in ("y", "dx", "dw", "db")) < 2e-6


def test_pconv_rejects_a_stride_it_does_not_implement():
    lay = PLayout(1, 4, 4)
    with pytest.raises(ValueError, match="PConv supports"):
        PConv(2, 2, 3, 3, lay, lay)


# ---- resampling and phases ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("threads", [1, 2])
def test_upsample2_p_matches_upsample_forward_and_backward(threads):
    lo, hi = PLayout(2, 3, 5), PLayout(2, 6, 10)
    X, x = random_p(lo, 3)
    geo = (lo.B, lo.H, lo.W, lo.M0, lo.S, lo.Wp, hi.M0, hi.S, hi.Wp)
    up = Upsample(2)
    dY, dy = random_p(hi, 3, seed=1)
    with use_threads(threads, blas=1):                   # the serial kernels, then the parallel ones
        np.testing.assert_array_equal(hi.from_p(upsample2_p(X, hi.zeros(3), *geo)), up.forward(x))
        np.testing.assert_allclose(lo.from_p(upsample2_p_backward(dY, lo.zeros(3), *geo)), up.backward(dy),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("threads", [1, 2])
def test_split_phases_holds_the_four_subsampled_images_and_merge_inverts_it(threads):
    hi, lo = PLayout(2, 6, 4), PLayout(2, 3, 2)
    X, x = random_p(hi, 3)
    geo = (lo.B, lo.H, lo.W, hi.M0, hi.S, hi.Wp, lo.M0, lo.S, lo.Wp)
    with use_threads(threads, blas=1):
        ph = split_phases(X, lo.zeros(12), *geo)
        merged = merge_phases(ph, hi.zeros(3), *geo)
    for r in range(2):
        for s in range(2):
            np.testing.assert_array_equal(lo.from_p(ph[(2 * r + s) * 3:(2 * r + s + 1) * 3]), x[:, :, r::2, s::2])
    np.testing.assert_array_equal(merged, X)


# ---- the generator -------------------------------------------------------------------------------------------------
def test_generated_forward_kernel_holds_ob_x_4_accumulators():
    src = conv_source(3)
    assert src.count("vfma(") == 3 * 4 and src.count("vstore(") == 3 * 4
    assert "def conv_p_o3(" in src


def test_generated_weight_gradient_kernel_holds_ob_x_cb_accumulators():
    src = wgrad_source(4, 6)
    assert src.count("vfma(") == 4 * 6 and src.count("vhsum(") == 4 * 6


# ---- portability: the vector type is LLVM's, not AVX-512's ------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["haswell", "x86-64"])          # AVX2, and baseline x86-64 (SSE2 only)
def test_kernels_compiled_for_a_cpu_without_avx512_give_the_same_results(cpu, tmp_path):
    import os
    import subprocess
    import sys

    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        pytest.skip("compiles kernels")
    code = ("from tests.test_kernels_pconv import run_p, rel\n"
            "for case in [(2, 3, 5, 5, 7, 3, 1), (2, 8, 4, 6, 4, 3, 2)]:\n"
            "    r = run_p(*case)\n"
            "    assert max(rel(*r[n]) for n in ('y', 'dx', 'dw', 'db')) < 2e-6, case\n")
    env = {**os.environ, "NUMBA_CPU_NAME": cpu, "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
           "TINYDIFF_KERNEL_DIR": str(tmp_path / "kernels")}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
