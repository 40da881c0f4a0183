"""Property tests (hypothesis) of the schedules: every valid argument gives a proper chain, every bad one a clear error."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.schedules import NoiseSchedule

FAST = settings(max_examples=25, deadline=None)
T = st.integers(min_value=1, max_value=4000)
NAMES = ["linear", "cosine", "sigmoid", "scaled_linear"]


def assert_alpha_bar_decreases_in_the_unit_interval(schedule):
    ab = schedule.alphas_cumprod
    assert np.all(ab > 0) and np.all(ab <= 1)
    assert np.all(np.diff(ab) < 0)


NOT_NOISE = pytest.mark.filterwarnings("ignore:.*far from pure noise")   # a warning about the end, not an error


@NOT_NOISE
@FAST
@given(T=T, name=st.sampled_from(NAMES))
def test_every_schedule_and_T_gives_alpha_bar_decreasing_in_0_1(T, name):
    assert_alpha_bar_decreases_in_the_unit_interval(NoiseSchedule.from_name(name, T))


@NOT_NOISE
@FAST
@given(T=st.integers(1, 2000), start=st.floats(1e-6, 0.05), end=st.floats(1e-4, 0.05))
def test_linear_with_any_betas_in_0_1_gives_a_proper_chain(T, start, end):
    assert_alpha_bar_decreases_in_the_unit_interval(NoiseSchedule.linear(T, start, end))


@FAST
@given(T=T, s=st.floats(0.0, 1.0), max_beta=st.floats(0.01, 0.999))
def test_cosine_with_any_offset_s_at_least_0_gives_a_proper_chain(T, s, max_beta):
    assert_alpha_bar_decreases_in_the_unit_interval(NoiseSchedule.cosine(T, s=s, max_beta=max_beta))


@FAST
@given(bad=st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.just(float("nan")), st.just(float("inf"))),
       which=st.sampled_from(["beta_start", "beta_end"]), name=st.sampled_from(["linear", "scaled_linear"]))
def test_a_beta_outside_0_1_is_refused_not_capped(bad, which, name):
    with pytest.raises(ValueError, match=rf"{name}: {which} must be a number in \(0, 1\)"):
        getattr(NoiseSchedule, name)(100, **{which: bad})


def test_linear_beta_end_2_is_refused():
    with pytest.raises(ValueError, match=r"beta_end must be a number in \(0, 1\), got 2"):
        NoiseSchedule.linear(beta_end=2)


@FAST
@given(s=st.one_of(st.floats(max_value=-1e-12), st.just(float("nan")), st.just(float("inf"))))
def test_cosine_with_a_negative_or_non_finite_offset_is_a_clear_value_error(s):
    with pytest.raises(ValueError, match="offset s must be a finite number >= 0"):
        NoiseSchedule.cosine(100, s=s)


def test_cosine_s_minus_1_is_a_value_error_not_a_division_by_zero():
    with pytest.raises(ValueError, match="offset s"):
        NoiseSchedule.cosine(s=-1)


@pytest.mark.parametrize("kwargs", [dict(tau=0), dict(tau=-1), dict(start=3, end=-3), dict(start=1, end=1),
                                    dict(max_beta=1.0), dict(max_beta=0)])
def test_sigmoid_refuses_degenerate_arguments(kwargs):
    with pytest.raises(ValueError, match="sigmoid"):
        NoiseSchedule.sigmoid(100, **kwargs)


@FAST
@given(T=st.one_of(st.integers(max_value=0), st.floats(allow_nan=True), st.booleans()))
def test_a_T_that_is_not_a_positive_integer_is_refused(T):
    with pytest.raises(ValueError, match="T .* must be a positive integer"):
        NoiseSchedule.linear(T)
