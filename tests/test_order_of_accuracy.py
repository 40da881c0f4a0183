"""Order of accuracy of the ODE samplers, measured with the exact mixture denoiser (tinydiff.accuracy).

Setting: the 8-Gaussian mixture, the VP SDE process (Song et al. 2021; sigma/alpha from 157 down to 0.010), 32 start
points, every sampler stopped at t_min (the same end points on every grid), error = RMS distance to Heun on the
rho = 7 grid with 2048 points (its own error, against 8192 points, is 1e-6: 50x below the smallest error fitted).
The order is minus the least-squares slope of log error against log NFE over the stated range; tolerance: 1 +- 0.15
for first-order methods, 2 +- 0.25 for second-order ones. Measured (100 points): euler 0.92 / 1.04 / 1.03 on the
uniform-t / lambda / rho = 7 grids over NFE 32-256; heun 1.9 / 2.07 / 2.04 over NFE 64-512; dpm++2m 1.86 / 1.84 on
lambda / rho = 7 over NFE 64-256. On the uniform-t grid DPM-Solver++(2M) is not yet asymptotic below NFE ~ 500 (its
last step spans log(1 + dt / t_min) in lambda, which shrinks only once dt << t_min = 1e-3): slope ~1 over NFE
32-256, 1.93 over NFE 256-2048 (the slow test).
"""

import numpy as np
import pytest

from tinydiff.accuracy import order_of_accuracy, reference_solution
from tinydiff.analytic import GaussianMixture
from tinydiff.data.toy2d import gaussian_mixture_params
from tinydiff.processes import VPProcess

MIX = GaussianMixture.from_params(gaussian_mixture_params("8gaussians"))
PROCESS = VPProcess()
STEPS = [17, 33, 65, 129, 257]                          # NFE 16..256 (heun, edm: 32..512)


@pytest.fixture(scope="module")
def start_and_reference():
    x_T = np.random.default_rng(0).standard_normal((32, 2))
    return x_T, reference_solution(MIX, PROCESS, x_T, 2048)


@pytest.mark.parametrize("spacing", ["uniform", "lambda", "karras"])
def test_euler_is_first_order(spacing, start_and_reference):
    r = order_of_accuracy(MIX, PROCESS, "euler", spacing, STEPS, *start_and_reference)
    assert abs(r.order(32, 256) - 1.0) < 0.15, (r.nfe, r.err)


@pytest.mark.parametrize("spacing", ["uniform", "lambda", "karras"])
def test_heun_is_second_order(spacing, start_and_reference):
    r = order_of_accuracy(MIX, PROCESS, "heun", spacing, STEPS, *start_and_reference)
    assert abs(r.order(64, 512) - 2.0) < 0.25, (r.nfe, r.err)


@pytest.mark.parametrize("spacing", ["lambda", "karras"])
def test_dpm_solver_pp_2m_is_second_order(spacing, start_and_reference):
    r = order_of_accuracy(MIX, PROCESS, "dpm++2m", spacing, STEPS, *start_and_reference)
    assert abs(r.order(64, 256) - 2.0) < 0.25, (r.nfe, r.err)


def test_ddim_is_euler(start_and_reference):
    x_T, _ = start_and_reference
    a = order_of_accuracy(MIX, PROCESS, "ddim", "karras", [9, 17], x_T, start_and_reference[1])
    b = order_of_accuracy(MIX, PROCESS, "euler", "karras", [9, 17], x_T, start_and_reference[1])
    np.testing.assert_allclose(a.err, b.err, rtol=1e-8)


def test_edm_heun_is_heun(start_and_reference):
    x_T, ref = start_and_reference
    a = order_of_accuracy(MIX, PROCESS, "edm", "karras", [9, 17], x_T, ref)
    b = order_of_accuracy(MIX, PROCESS, "heun", "karras", [9, 17], x_T, ref)
    np.testing.assert_array_equal(a.err, b.err)
    np.testing.assert_array_equal(a.nfe, b.nfe)


def test_dpm_solver_pp_2m_on_uniform_t_is_not_yet_second_order_at_small_nfe(start_and_reference):
    r = order_of_accuracy(MIX, PROCESS, "dpm++2m", "uniform", STEPS, *start_and_reference)
    assert r.order(32, 256) < 1.5, (r.nfe, r.err)


@pytest.mark.slow
def test_dpm_solver_pp_2m_on_uniform_t_becomes_second_order():
    x_T = np.random.default_rng(0).standard_normal((32, 2))
    ref = reference_solution(MIX, PROCESS, x_T, 8192)
    r = order_of_accuracy(MIX, PROCESS, "dpm++2m", "uniform", [257, 513, 1025, 2049], x_T, ref)
    assert abs(r.order() - 2.0) < 0.25, (r.nfe, r.err)
