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
