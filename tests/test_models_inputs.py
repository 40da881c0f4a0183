"""The one checker of time steps and labels that every denoiser uses (tinydiff.models.inputs)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinydiff.models import MLPDenoiser, UNet, UNetConfig
from tinydiff.models.inputs import check_labels, check_timesteps


def mlp(**kw):
    return MLPDenoiser(width=8, n_blocks=1, emb_dim=4, rng=0, **kw)


def unet(**kw):
    return UNet(UNetConfig(base_channels=4, channel_mults=(1, 2), num_groups=2, emb_dim=8, **kw.pop("cfg", {})), **kw)


POINTS, IMAGES = np.zeros((2, 2), np.float32), np.zeros((2, 1, 8, 8), np.float32)


def test_mlp_denoiser_refuses_a_step_beyond_its_schedule():
    with pytest.raises(ValueError, match=r"time step 5000 is out of range for T = 1000: steps are 0..999"):
        mlp(num_timesteps=1000)(POINTS, np.array([3, 5000]))


def test_unet_refuses_a_step_beyond_its_schedule():
    with pytest.raises(ValueError, match=r"time step 1000 is out of range for T = 1000"):
        unet(num_timesteps=1000)(IMAGES, 1000)


def test_last_step_is_accepted():
    assert mlp(num_timesteps=1000)(POINTS, np.array([0, 999])).shape == (2, 2)


@pytest.mark.parametrize("model, x", [(mlp, POINTS), (unet, IMAGES)], ids=["mlp", "unet"])
@pytest.mark.parametrize("label", [-1, 4])
def test_labels_outside_the_classes_and_the_null_label_are_refused(model, x, label):
    kw = dict(num_classes=3) if model is mlp else dict(cfg=dict(num_classes=3))
    with pytest.raises(ValueError, match=rf"labels must be in 0..2 \(or the null label 3.*got {label}"):
        model(**kw)(x, np.array([0, 0]), np.array([0, label]))


@pytest.mark.parametrize("model, x", [(mlp, POINTS), (unet, IMAGES)], ids=["mlp", "unet"])
def test_a_scalar_label_and_step_apply_to_the_whole_batch(model, x):
    kw = dict(num_classes=3) if model is mlp else dict(cfg=dict(num_classes=3))
    m = model(**kw)
    np.testing.assert_array_equal(m(x, 5, 1), m(x, np.array([5, 5]), np.array([1, 1])))


def test_check_timesteps_refuses_negative_and_float_steps():
    with pytest.raises(ValueError, match=">= 0"):
        check_timesteps("M", np.array([-1, 2]), 2)
    with pytest.raises(ValueError, match="integer time steps"):
        check_timesteps("M", np.array([1.0, 2.0]), 2)


def test_check_labels_fills_the_null_label_when_none_is_given():
    np.testing.assert_array_equal(check_labels("M", None, 3, num_classes=10, null_label=10), [10, 10, 10])


def test_check_labels_refuses_labels_for_an_unconditional_model():
    with pytest.raises(ValueError, match="unconditional"):
        check_labels("M", np.array([0]), 1, num_classes=0, null_label=0)


# ---- properties (hypothesis) -----------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(T=st.integers(1, 10_000), t=st.lists(st.integers(-10**6, 10**6), min_size=1, max_size=8))
def test_check_timesteps_accepts_exactly_the_steps_0_to_T_minus_1(T, t):
    t = np.array(t)
    if np.all((t >= 0) & (t < T)):
        np.testing.assert_array_equal(check_timesteps("M", t, len(t), T), t)
    else:
        with pytest.raises(ValueError, match="time step"):
            check_timesteps("M", t, len(t), T)


@settings(max_examples=40, deadline=None)
@given(K=st.integers(1, 20), y=st.lists(st.integers(-50, 50), min_size=1, max_size=8))
def test_check_labels_accepts_exactly_0_to_K_minus_1_and_the_null_label(K, y):
    y = np.array(y)
    if np.all((y >= 0) & (y <= K)):                               # K itself is the null label
        np.testing.assert_array_equal(check_labels("M", y, len(y), K, K), y)
    else:
        with pytest.raises(ValueError, match="labels must be in"):
            check_labels("M", y, len(y), K, K)
