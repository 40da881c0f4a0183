"""The equations that chapters 11 (images, the U-Net) and 12 (conditioning and guidance on digits) state, each checked
against an independent computation: the receptive-field rule, the parameter count of a convolution, AdaGN's
modulation, the expansion behind "which digit was x_t made from?", label dropout, and the identity behind the
diversity measure (mean squared pairwise distance = 2 tr S). Plus the layout of ``viz.tile_images``."""

import numpy as np
import pytest

from tinydiff import viz
from tinydiff.metrics.images import gaussian_stats
from tinydiff.nn.blocks import ResBlock
from tinydiff.nn.conv import Conv2d
from tinydiff.models.unet import UNet
from tinydiff.nn.module import Sequential
from tinydiff.train import TrainConfig, Trainer


# ---- chapter 11 --------------------------------------------------------------------------------------------------
def receptive_field(layers):
    """r_l = r_{l-1} + (k_l - 1) j_{l-1}, j_l = j_{l-1} s_l, r_0 = j_0 = 1 (chapter 11); the final r."""
    r, j = 1, 1
    for k, s in layers:
        r, j = r + (k - 1) * j, j * s
    return r


@pytest.mark.parametrize("layers", [[(3, 1)] * 4, [(3, 1), (3, 2), (3, 1), (3, 2), (3, 1)], [(5, 2), (3, 2), (3, 1)]])
def test_receptive_field_rule_matches_the_support_of_a_conv_stack_gradient(layers):
    # all-positive weights, so no gradient cancels: the input pixels that reach the centre output are exactly
    # those with a nonzero dL/dx, a contiguous block of r x r pixels away from the borders
    stack = Sequential(*[Conv2d(1, 1, k, stride=s, padding=k // 2, dtype=np.float64) for k, s in layers])
    for p in stack.parameters().values():
        p[...] = 1.0
    out = stack.forward(np.zeros((1, 1, 64, 64)))
    grad = np.zeros_like(out)
    grad[0, 0, out.shape[2] // 2, out.shape[3] // 2] = 1.0
    dx = stack.backward(grad)[0, 0]                                               # (64, 64)
    rows, cols = np.flatnonzero(dx.any(axis=1)), np.flatnonzero(dx.any(axis=0))
    assert rows.min() > 0 and rows.max() < 63, "the test image is too small for this stack"
    assert len(rows) == len(cols) == rows.max() - rows.min() + 1 == receptive_field(layers)


def test_receptive_field_rule_gives_the_numbers_chapter_11_prints():
    unet_down_path = [(3, 1)] * 3 + [(3, 2)] + [(3, 1)] * 2 + [(3, 2)] + [(3, 1)] * 4
    assert receptive_field(unet_down_path) == 53
    assert receptive_field([(3, 1)] * len(unet_down_path)) == 23


def test_conv_has_cout_cin_k_k_plus_cout_parameters():
    assert Conv2d(5, 7, 3).num_parameters() == 7 * 5 * 3 * 3 + 7


def test_adagn_scales_and_shifts_the_normalised_features():
    # h' = GroupNorm(h) (1 + s) + b with [s; b] = Linear(SiLU(e)); make the Linear output known: weight 0, bias [s; b]
    rng = np.random.default_rng(0)
    block = ResBlock(4, 6, emb_dim=8, num_groups=2, rng=1, dtype=np.float64)
    s, b = rng.standard_normal(6), rng.standard_normal(6)
    block.emb_proj.params["weight"][...] = 0.0
    block.emb_proj.params["bias"][...] = np.concatenate([s, b])
    x, e = rng.standard_normal((3, 4, 5, 5)), rng.standard_normal((3, 8))
    out = block.forward(x, e)

    h = block.conv1.forward(block.act1.forward(block.norm1.forward(x)))          # (3, 6, 5, 5)
    mean = h.reshape(3, 2, -1).mean(axis=2)[:, :, None, None, None]                # per image and group of 3 channels
    var = h.reshape(3, 2, -1).var(axis=2)[:, :, None, None, None]
    n = ((h.reshape(3, 2, 3, 5, 5) - mean) / np.sqrt(var + block.norm2.eps)).reshape(3, 6, 5, 5)
    h_mod = n * (1 + s[None, :, None, None]) + b[None, :, None, None]
    expected = block.skip.forward(x) + block.conv2.forward(block.act2.forward(h_mod))
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_most_likely_source_digit_is_the_nearest_after_scaling_and_the_expansion_finds_it():
    # argmin_k ||x_t - sqrt(ab) x0_k||^2 = argmin_k (-2 sqrt(ab) x_t . x0_k + ab ||x0_k||^2)
    rng = np.random.default_rng(0)
    cand, ab = rng.standard_normal((30, 16)), 0.3
    x_t = np.sqrt(ab) * cand + np.sqrt(1 - ab) * rng.standard_normal(cand.shape)  # (30, 16)
    brute = ((x_t[:, None, :] - np.sqrt(ab) * cand[None]) ** 2).sum(-1)           # (30, 30)
    expanded = -2 * np.sqrt(ab) * x_t @ cand.T + ab * (cand ** 2).sum(1)[None, :]
    np.testing.assert_allclose(brute, expanded + (x_t ** 2).sum(1)[:, None], rtol=1e-12)
    np.testing.assert_array_equal(brute.argmin(1), expanded.argmin(1))


def test_tile_images_places_images_row_by_row_with_padding():
    images = np.arange(3, dtype=np.float64)[:, None, None, None] * np.ones((3, 1, 2, 2))   # image k is all k
    mosaic = viz.tile_images(images, ncol=2, pad=1, pad_value=-1)
    assert mosaic.shape == (5, 5)
    assert np.all(mosaic[:2, :2] == 0) and np.all(mosaic[:2, 3:] == 1) and np.all(mosaic[3:, :2] == 2)
    assert np.all(mosaic[2] == -1) and np.all(mosaic[:, 2] == -1) and np.all(mosaic[3:, 3:] == -1)


# ---- chapter 12 --------------------------------------------------------------------------------------------------
def test_the_label_row_is_added_to_the_time_embedding():
    # e(t, y) = Linear(SiLU(Linear(sin_emb(t)))) + E[y]: an unconditional UNet with the same weights and E[y] added to
    # the last bias of its time MLP must give the same output
    kw = dict(base_channels=8, channel_mults=(1, 2), attention=False, emb_dim=16, image_size=8, dtype=np.float64)
    cond, uncond = UNet(num_classes=3, rng=0, **kw), UNet(num_classes=0, rng=1, **kw)
    uncond.load_state_dict({k: v for k, v in cond.state_dict().items() if not k.startswith("y_embed")})
    y = 2
    uncond.t_lin2.params["bias"][...] += cond.y_embed.params["weight"][y]
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((3, 1, 8, 8)), np.array([0, 400, 999])
    np.testing.assert_allclose(cond(x, t, np.full(3, y)), uncond(x, t), rtol=1e-10, atol=1e-12)


def _labels_seen_in_one_step(label_dropout):
    config = TrainConfig(data="8gaussians", conditional=True, label_dropout=label_dropout, n_train=4000,
                         batch_size=4000, steps=1, width=16, n_blocks=1, emb_dim=16, seed=0)
    trainer = Trainer(config)
    seen = []
    forward = trainer.model.forward
    trainer.model.forward = lambda x, t, y=None: (seen.append(np.array(y)), forward(x, t, y))[1]
    trainer.step()
    return seen[0], trainer.model.null_label


def test_label_dropout_replaces_that_fraction_of_labels_by_the_null_label():
    y, null = _labels_seen_in_one_step(0.3)
    assert abs(np.mean(y == null) - 0.3) < 0.03               # 4000 labels: std of the fraction is 0.007
    assert set(np.unique(y[y != null])) == set(range(8))      # the others are real labels


def test_no_label_dropout_keeps_every_label():
    y, null = _labels_seen_in_one_step(0.0)
    assert not np.any(y == null)


def test_mean_squared_pairwise_distance_is_twice_the_trace_of_the_covariance():
    f = np.random.default_rng(0).standard_normal((12, 5)) * [1, 2, 3, 0.5, 1]
    pairs = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)                        # (12, 12), zero diagonal
    mean_over_distinct_pairs = pairs.sum() / (len(f) * (len(f) - 1))
    assert np.isclose(mean_over_distinct_pairs, 2 * np.trace(gaussian_stats(f)[1]), rtol=1e-12)
