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

    from tinydiff.threads import blas_threads

    def counts():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

    before = counts()
    with blas_threads(1):
        assert all(n == 1 for n in counts())
    assert counts() == before
