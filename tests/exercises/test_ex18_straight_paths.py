"""Exercises 18.1 (debugging Liu et al. 2023's straightness) and 18.2 (minibatch OT pairing, Tong et al. 2023)
(chapters/18_straight_paths_and_few_steps.py)."""

import itertools

import numpy as np
import pytest

from tinydiff.exercises.checks import exercise_name, expect_close, expect_true
from tinydiff.flow import ot_pairing, straightness


# ---- 18.1 debugging straightness -------------------------------------------------------------------------------
def _parabola(ts, d):
    """Paths x(t) = t^2 d (B, D) sampled at ts: from x(0) = 0 to x(1) = d; S = |d|^2 / 3 on average over B."""
    return ts[:, None, None] ** 2 * d[None]                                    # (S+1, B, D)


def _parabola_s(ts, d):
    """S of the parabolas on the grid ts: segment k has slope (t_k + t_{k+1}) d, so its deviation from the mean
    slope d is |d|^2 (1 - t_k - t_{k+1})^2, weighted by its length (-> |d|^2 / 3 for a fine grid)."""
    dt = ts[:-1] - ts[1:]
    return float(np.mean(np.sum(d * d, axis=1)) * np.sum((1 - ts[:-1] - ts[1:]) ** 2 * dt) / (ts[0] - ts[-1]))


@pytest.mark.ex18_1
def test_straightness_of_a_curved_path_on_a_non_uniform_grid():
    d = np.random.default_rng(0).standard_normal((5, 2))
    uniform = np.linspace(1, 0, 401)
    karras = np.linspace(1, 0, 401) ** 3                                        # dense near t = 0, like sampler grids
    got_uniform = straightness(uniform, _parabola(uniform, d))
    got = straightness(karras, _parabola(karras, d))
    expect_close("ex18_1", "S of x(t) = t^2 d on a grid dense near t = 0", got, _parabola_s(karras, d), rtol=1e-9, hint=(
        f"on a uniform grid your S is {got_uniform:.5f} (expected {_parabola_s(uniform, d):.5f}), on this "
        f"non-uniform one it is {got:.5f}; both grids should give about |d|^2 / 3 = "
        f"{np.mean(np.sum(d * d, axis=1)) / 3:.5f}. S is an integral over t from 0 to 1, whatever the grid."))


@pytest.mark.ex18_1
def test_straight_paths_at_constant_speed_have_zero_straightness():
    rng = np.random.default_rng(1)
    x0, z = rng.standard_normal((2, 6, 3))
    ts = np.linspace(1, 0, 21) ** 2
    xs = (1 - ts)[:, None, None] * x0[None] + ts[:, None, None] * z[None]      # (21, 6, 3): straight lines
    got = straightness(ts, xs)
    expect_true("ex18_1", abs(got) < 1e-12, f"S of straight constant-speed paths is {got:.3g}; expected 0")


@pytest.mark.ex18_1
def test_straightness_is_positive_and_scales_with_the_square_of_the_path():
    d = np.random.default_rng(2).standard_normal((4, 2))
    ts = np.concatenate([np.linspace(1, 0.5, 5), np.linspace(0.5, 0, 41)[1:]])   # two step sizes
    s1, s3 = straightness(ts, _parabola(ts, d)), straightness(ts, _parabola(ts, 3 * d))
    expect_true("ex18_1", s1 > 0 and abs(s3 / s1 - 9) < 1e-9,
                f"S = {s1:.4g} for paths t^2 d and {s3:.4g} for t^2 (3 d): S is positive and scales like |d|^2 (x 9)")
    expect_close("ex18_1", "S of x(t) = t^2 d on a grid with two step sizes", s1, _parabola_s(ts, d), rtol=1e-9,
                 hint="S = int_0^1 E ||(x_1 - x_0) - dx_t/dt||^2 dt over the whole trajectory")


# ---- 18.2 minibatch OT ---------------------------------------------------------------------------------------------
def _cost(x0, eps, pi):
    return float(np.sum((x0 - eps[pi]) ** 2))


def _check_optimal(x0, eps, pi, what):
    pi = np.asarray(pi)
    expect_true("ex18_2", pi.shape == (len(x0),) and sorted(pi.tolist()) == list(range(len(x0))),
                f"{what}: pi = {pi.tolist()} is not a permutation of 0..{len(x0) - 1}")
    best = min(itertools.permutations(range(len(x0))), key=lambda p: _cost(x0, eps, np.array(p)))
    opt, got = _cost(x0, eps, np.array(best)), _cost(x0, eps, pi)
    if abs(got - opt) > 1e-9:
        inv, euclid = np.argsort(pi), min(itertools.permutations(range(len(x0))),
                                          key=lambda p: np.sum(np.linalg.norm(x0 - eps[list(p)], axis=1)))
        why = ("pi is inverted: pi[i] is the index of the noise paired with x0[i] (pi[rows] = cols), so that "
               "eps[pi] lines up with x0" if abs(_cost(x0, eps, inv) - opt) < 1e-9 else
               "that is the pairing that minimises the sum of distances; the cost is the squared distance "
               "||x0_i - eps_j||^2" if list(pi) == list(euclid) else
               "the cost matrix is C[i, j] = ||x0_i - eps_j||^2 over every pair (i, j)")
        raise AssertionError(f"{exercise_name('ex18_2')}: {what}: sum_i ||x0_i - eps_pi(i)||^2 = {got:.4f} with your "
                             f"pi {pi.tolist()}, but the optimal pairing {list(best)} costs {opt:.4f}.\n  Likely cause: {why}")


@pytest.mark.ex18_2(part="one block: the optimal pairing")
def test_pairing_minimises_the_total_squared_distance():
    rng = np.random.default_rng(7)
    for k in range(3):
        x0, eps = rng.standard_normal((2, 6, 2))
        _check_optimal(x0, eps, ot_pairing(x0, eps), f"batch {k} of 6 points")


@pytest.mark.ex18_2(part="one block: the optimal pairing")
def test_squared_distances_not_distances():
    """An instance where the two costs disagree (checked here): the pairing must minimise the squared one."""
    x0 = np.array([[0.7, -0.7], [3.0, 2.9], [1.1, 0.9]])
    eps = np.array([[1.1, -0.7], [-2.2, 1.3], [0.2, -1.1]])
    sq = min(itertools.permutations(range(3)), key=lambda p: _cost(x0, eps, np.array(p)))
    eu = min(itertools.permutations(range(3)), key=lambda p: np.sum(np.linalg.norm(x0 - eps[list(p)], axis=1)))
    assert sq != eu                                                     # the instance does tell the costs apart
    _check_optimal(x0, eps, ot_pairing(x0, eps), "points on a line")


@pytest.mark.ex18_2(part="blocks of m rows")
def test_blocks_are_paired_within_themselves():
    rng = np.random.default_rng(8)
    x0, eps = rng.standard_normal((2, 12, 1, 2, 2))                     # (B, C, H, W): flattened inside
    pi = ot_pairing(x0, eps, block=4)
    expect_true("ex18_2", np.shape(pi) == (12,), f"pi has shape {np.shape(pi)}, expected (12,)")
    for s in range(0, 12, 4):
        part = np.asarray(pi[s:s + 4]) - s
        expect_true("ex18_2", sorted(part.tolist()) == [0, 1, 2, 3],
                    f"rows {s}..{s + 3} are paired with noise indices {pi[s:s + 4].tolist()}: each block of m rows "
                    f"pairs among its own indices {s}..{s + 3} (add the block's offset s to the assignment)")
        _check_optimal(x0[s:s + 4].reshape(4, -1), eps[s:s + 4].reshape(4, -1), part, f"block {s // 4}")
