"""MLPTrainStep computes what the layers compute: same loss, gradients, updated weights and checkpoints."""

import numpy as np
import pytest

from tinydiff.models.mlp import MLPDenoiser
from tinydiff.models.mlp_step import MLPTrainStep
from tinydiff.nn.kernels import fused_mlp
from tinydiff.nn.losses import mse_loss
from tinydiff.nn.optim import AdamW, clip_grad_norm
from tinydiff.train import TrainConfig, Trainer

LR = 1e-3


def pair(**kw):
    """Two identical models with AdamW: one trained by its layers, one through MLPTrainStep."""
    a, b = MLPDenoiser(rng=0, **kw), MLPDenoiser(rng=0, **kw)
    opt_a = AdamW(a.parameters(), a.gradients(), lr=LR)
    return (a, opt_a), MLPTrainStep(b, AdamW(b.parameters(), b.gradients(), lr=LR))


def batch(n, dim=2, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)).astype(np.float32), rng.integers(0, 1000, n),
            rng.standard_normal((n, dim)).astype(np.float32))


def layer_step(model, opt, x, t, target):
    loss, dy = mse_loss(model.forward(x, t), target)
    model.backward(dy, input_grad=False)
    return loss


def max_rel_diff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max() / (np.abs(a[k]).max() + 1e-30)) for k in a)


@pytest.mark.parametrize("n", [1, 33, 256])
def test_loss_output_and_gradients_equal_the_layers(n):
    (model, opt), step = pair()
    x, t, target = batch(n)
    loss = layer_step(model, opt, x, t, target)
    fast_loss, out = step.loss_and_gradients(x, t, target)
    assert fast_loss == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(out, model.forward(x, t), rtol=1e-5, atol=1e-6)
    assert max_rel_diff(model.gradients(), step.model.gradients()) < 1e-5


def test_weights_after_several_steps_equal_clip_grad_norm_then_adamw():
    (model, opt), step = pair(width=32, n_blocks=2, emb_dim=16)
    for seed in range(4):                                    # new batches, batch size changes: buffers reallocate
        x, t, target = batch(16 + 8 * seed, seed=seed)
        layer_step(model, opt, x, t, target)
        norm = clip_grad_norm(model.gradients(), 0.5)
        opt.step()
        step.loss_and_gradients(x, t, target)
        assert step.clip_and_update(LR, 0.5) == pytest.approx(norm, rel=1e-5)
    assert step.opt.step_count == opt.step_count == 4
    for k, p in model.parameters().items():                  # AdamW moves each weight by ~lr per step
        np.testing.assert_allclose(step.model.parameters()[k], p, rtol=0, atol=0.05 * LR)
    assert max_rel_diff(opt.state_dict(), step.opt.state_dict()) < 1e-3


def test_parameters_gradients_and_moments_are_views_of_one_flat_array_each():
    _, step = pair(width=8, n_blocks=1, emb_dim=4)
    params, grads = step.model.parameters(), step.model.gradients()
    assert sum(p.size for p in params.values()) == step.theta.size
    for k in params:
        assert np.shares_memory(params[k], step.theta) and np.shares_memory(grads[k], step.grad)
        assert np.shares_memory(step.opt.state["m"][k], step.m) and step.opt.params[k] is params[k]
    step.model.load_state_dict({k: np.full_like(p, 2.0) for k, p in params.items()})
    assert np.all(step.theta == 2.0)                        # loading writes into the flat array


def test_reference_kernels_give_the_same_step():
    # what runs under NUMBA_DISABLE_JIT=1 (fused_mlp.KERNELS picks the references there)
    (_, _), fast = pair(width=16, n_blocks=2, emb_dim=8)
    (_, _), ref = pair(width=16, n_blocks=2, emb_dim=8)
    ref.kernels = fused_mlp.REF
    x, t, target = batch(20)
    assert ref.loss_and_gradients(x, t, target)[0] == pytest.approx(fast.loss_and_gradients(x, t, target)[0], rel=1e-6)
    assert max_rel_diff(ref.model.gradients(), fast.model.gradients()) < 1e-5


def test_models_it_does_not_cover_are_refused_with_the_reason():
    model = MLPDenoiser(num_classes=3, width=8, n_blocks=1, emb_dim=4)
    with pytest.raises(TypeError, match="unconditional float32 MLPDenoiser.*num_classes=3"):
        MLPTrainStep(model, AdamW(model.parameters(), model.gradients()))


def tiny(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(data="moons", n_train=256, steps=20, batch_size=32, T=50, width=16, n_blocks=2,
                                 emb_dim=8, warmup_steps=5, log_every=10, loss_buckets=5), **kw})


def test_trainer_uses_the_fused_step_for_an_unconditional_mlp_only():
    assert Trainer(tiny()).fast_step is not None
    assert Trainer(tiny(), fast=False).fast_step is None
    assert Trainer(tiny(data="8gaussians", conditional=True)).fast_step is None


def test_trainer_checkpoints_match_the_layer_by_layer_path():
    fast, layers = Trainer(tiny()), Trainer(tiny(), fast=False)
    fast.train(progress=False)
    layers.train(progress=False)
    np.testing.assert_allclose(fast.log.loss, layers.log.loss, rtol=1e-4)
    a, b = fast.state_arrays(), layers.state_arrays()
    assert sorted(a) == sorted(b)
    for k in a:
        if a[k].dtype.kind == "f" and not k.startswith("log/"):    # log/seconds is wall time
            np.testing.assert_allclose(a[k], b[k], rtol=1e-3, atol=1e-4, err_msg=k)
        elif not k.startswith("log/"):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_model_without_residual_blocks_trains_through_the_same_step():
    (model, opt), step = pair(n_blocks=0, width=8, emb_dim=4)
    x, t, target = batch(9)
    assert step.loss_and_gradients(x, t, target)[0] == pytest.approx(layer_step(model, opt, x, t, target), rel=1e-6)
    assert max_rel_diff(model.gradients(), step.model.gradients()) < 1e-5
