"""tinydiff.threads: BLAS thread limits and the BLAS report, with or without threadpoolctl."""

import subprocess
import sys

import pytest


def test_blas_info_names_numpys_blas_in_a_fresh_process():
    pytest.importorskip("threadpoolctl")
    # a fresh interpreter: threadpoolctl only sees libraries already loaded, so blas_info must load numpy first
    code = "from tinydiff.threads import blas_info; print(blas_info())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "threads" in out and "none found" not in out, out


def test_blas_threads_limits_and_restores():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy  # noqa: F401
    import scipy.special  # noqa: F401  (SciPy's own OpenBLAS: blas_threads loads it, so it is counted before too)

    from tinydiff.threads import blas_threads

    def counts():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = counts()
    with blas_threads(1):
        assert all(n == 1 for n in counts())
    assert counts() == before


def test_threadpoolctl_is_a_runtime_dependency():
    # the default install (pip install -e .) must be able to limit BLAS: on a busy machine two threads cost 5-10x
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    assert "threadpoolctl" in cfg["options"]["install_requires"]


def test_an_error_inside_blas_threads_carries_no_unrelated_import_error():
    from tinydiff.threads import blas_threads

    with pytest.raises(ValueError) as info:
        with blas_threads(1):
            raise ValueError("the caller's own error")
    assert info.value.__context__ is None, repr(info.value.__context__)


def test_without_threadpoolctl_blas_threads_warns_and_runs_the_block(monkeypatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)   # import threadpoolctl now raises ImportError
    from tinydiff.threads import blas_thread_count, blas_threads

    with pytest.warns(RuntimeWarning, match="threadpoolctl is not installed"):
        with pytest.raises(KeyError) as info:
            with blas_threads(1):
                raise KeyError("inside")
    assert info.value.__context__ is None
    with pytest.warns(RuntimeWarning):
        assert blas_thread_count() is None


def test_blas_thread_count_reports_the_limit_in_force():
    from tinydiff.threads import blas_thread_count, blas_threads

    with blas_threads(1):
        assert blas_thread_count() == 1


def test_the_conv_speed_table_prints_the_threads_blas_really_used():
    from tinydiff.bench.conv import bench_conv, format_table

    rows = bench_conv(B=1, C=4, O=4, H=6, W=6, repeats=1, threads=(1,), strategies=("im2col+BLAS NCHW",))
    assert {r["threads_used"] for r in rows} == {1}
    assert "| im2col+BLAS NCHW | 1 |" in format_table(rows)
    rows = [{**r, "threads_used": 2} for r in rows]            # e.g. a BLAS that ignored the limit
    assert "| im2col+BLAS NCHW | 2 (asked 1) |" in format_table(rows)


def test_a_blas_limit_also_holds_for_scipys_blas_loaded_later_by_tinydiffs_kernels():
    pytest.importorskip("threadpoolctl")
    # the bench printed "BLAS threads in use: 2" under a limit of 1: SciPy's own OpenBLAS, loaded by scipy.special
    # after the limit was set, kept its default thread count
    code = ("from tinydiff.threads import blas_threads, blas_thread_count\n"
            "with blas_threads(1):\n"
            "    import tinydiff.nn.kernels.activations\n"
            "    print(blas_thread_count())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1", out


def test_use_threads_sets_kernel_and_blas_threads_and_blas_may_differ():
    pytest.importorskip("threadpoolctl")
    from tinydiff.threads import blas_thread_count, kernel_threads, use_threads

    with use_threads(2, blas=1):
        assert (kernel_threads(), blas_thread_count()) == (2, 1)
    with use_threads(1):
        assert (kernel_threads(), blas_thread_count()) == (1, 1)
    with use_threads(2):
        assert (kernel_threads(), blas_thread_count()) == (2, 2)
    assert kernel_threads() == 1


def _fresh(*argv, **env) -> str:
    """Run ``python *argv`` in a fresh interpreter (the threading layer is chosen once per process), without the
    caller's choice of layer or wait policy, with ``env`` added; its stdout."""
    import os

    full = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")}
    full.update(env)
    return subprocess.run([sys.executable, *map(str, argv)], capture_output=True, text=True, check=True, env=full,
                          timeout=300).stdout


LAYER = ("import os, numpy as np, numba\n"
         "from tinydiff.threads import use_threads\n"
         "from tinydiff.nn.kernels.pnorm import gn_adagn_silu_p_par as k\n"
         "from tinydiff.nn.kernels.playout import PLayout\n"
         "lay = PLayout(2, 4, 4); C = 4\n"
         "with use_threads(2, 1):\n"
         "    k(lay.zeros(C), np.ones(C, np.float32), np.zeros(C, np.float32), np.zeros((2, 2 * C), np.float32),\n"
         "      1e-5, np.zeros((2, 2)), np.zeros((2, 2)), lay.zeros(C), lay.mask, 2, 4, 4, lay.M0, lay.S, lay.Wp)\n"
         "print(numba.threading_layer(), os.environ.get('OMP_WAIT_POLICY'))\n")


@pytest.mark.skipif(__import__("os").environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                    reason="no thread pool without the compiler")
def test_threads_run_on_openmp_with_sleeping_idle_threads_unless_the_user_chose():
    layer, policy = _fresh("-c", LAYER).split()
    # OpenMP if this Numba has it (it needs libgomp), else workqueue; its idle threads sleep instead of spinning
    assert layer in ("omp", "workqueue"), layer
    if layer == "omp":
        assert policy == "passive"
    assert _fresh("-c", LAYER, NUMBA_THREADING_LAYER="workqueue").split() == ["workqueue", "None"]
    if layer == "omp":
        assert _fresh("-c", LAYER, OMP_WAIT_POLICY="active").split() == ["omp", "active"]   # the user's choice is kept


def test_auto_threads_uses_every_usable_core_for_the_unet_and_one_for_the_mlp():
    import os

    from tinydiff.threads import auto_threads, usable_cores

    assert 1 <= usable_cores() <= (os.cpu_count() or 1)
    assert auto_threads("unet") == usable_cores()
    assert auto_threads("mlp") == 1
    with pytest.raises(ValueError, match="'unet' or 'mlp'"):
        auto_threads("transformer")


def test_thread_count_reads_a_positive_integer_or_auto():
    import argparse

    from tinydiff.commands.common import thread_count

    assert thread_count("auto") == "auto" and thread_count("3") == 3
    for bad in ("0", "-2", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive integer or 'auto'"):
            thread_count(bad)


FORK = '''
import multiprocessing as mp, warnings
import numba
from tinydiff.threads import use_threads
from tinydiff.nn.kernels.playout import PLayout, upsample2_p

def run():
    lo, hi = PLayout(2, 3, 3), PLayout(2, 6, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with use_threads(2, 1):
            out = upsample2_p(lo.zeros(2) + 1, hi.zeros(2), lo.B, lo.H, lo.W, lo.M0, lo.S, lo.Wp, hi.M0, hi.S, hi.Wp)
    return float(out.sum()), [str(w.message) for w in caught]

def child(q):
    q.put(run())

if __name__ == "__main__":
    print(run()[0], numba.threading_layer())
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    p.join(timeout=120)
    total, warned = q.get(timeout=10) if p.exitcode == 0 else (None, [])
    print(p.exitcode, total, any("forked" in w for w in warned))
'''


@pytest.mark.skipif(sys.platform != "linux" or __import__("os").environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"),
                    reason="fork and Numba's OpenMP threads")
def test_a_forked_child_runs_the_serial_kernels_instead_of_being_stopped_by_gnu_openmp(tmp_path):
    script = tmp_path / "fork.py"
    script.write_text(FORK)
    parent, child = _fresh(script).strip().splitlines()
    total, layer = parent.split()
    if layer != "omp":
        pytest.skip(f"this Numba runs its threads on {layer}, which survives a fork")
    # without the check, Numba stops the child with SIGTERM (exit code -15): GNU OpenMP's threads do not fork
    assert child.split() == ["0", total, "True"], child

