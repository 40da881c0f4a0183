"""The dtype rule of ``tinydiff.nn.module``, for every layer and model: layers refuse a float input of another
precision (naming the layer called, and the fix), parameter-free layers keep the input's dtype, models cast."""

import inspect

import numpy as np
import pytest

import tinydiff.models.classifier
import tinydiff.models.mlp
import tinydiff.models.unet
import tinydiff.nn as nn
from tinydiff.errors import DtypeError
from tinydiff.models import MLPDenoiser, UNet, UNetConfig
from tinydiff.models.classifier import MNISTClassifier
from tinydiff.models.mlp import FourierFeatures, MLPBlock

F32, F64 = np.float32, np.float64


def randn(*shape, dtype=F64):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def image(dtype, c=4):
    return randn(2, c, 4, 4, dtype=dtype)


# layer name -> (build(dtype), inputs(dtype)): a layer with parameters (or a dtype) and inputs that fit it
LAYERS = {
    "Linear": (lambda d: nn.Linear(3, 2, rng=0, dtype=d), lambda d: [randn(4, 3, dtype=d)]),
    "LayerNorm": (lambda d: nn.LayerNorm(3, dtype=d), lambda d: [randn(4, 3, dtype=d)]),
    "GroupNorm": (lambda d: nn.GroupNorm(2, 4, dtype=d), lambda d: [image(d)]),
    "Conv2d": (lambda d: nn.Conv2d(4, 2, 3, padding=1, rng=0, dtype=d), lambda d: [image(d)]),
    "SinusoidalEmbedding": (lambda d: nn.SinusoidalEmbedding(4, dtype=d), lambda d: [np.array([0.5, 3.0], dtype=d)]),
    "ResBlock": (lambda d: nn.ResBlock(4, 4, emb_dim=3, num_groups=2, rng=0, dtype=d),
                 lambda d: [image(d), randn(2, 3, dtype=d)]),
    "SelfAttention2d": (lambda d: nn.SelfAttention2d(4, num_groups=2, rng=0, dtype=d), lambda d: [image(d)]),
    "Sequential": (lambda d: nn.Sequential(nn.GELU(), nn.Linear(3, 2, rng=0, dtype=d)), lambda d: [randn(4, 3, dtype=d)]),
    "MLPBlock": (lambda d: MLPBlock(3, rng=0, dtype=d), lambda d: [randn(4, 3, dtype=d)]),
    "FourierFeatures": (lambda d: FourierFeatures(4, scale=2.0, dtype=d), lambda d: [randn(4, 2, dtype=d)]),
}
# parameter-free layers: (build, input shape)
PARAMETER_FREE = {
    "Identity": (nn.Identity, (2, 4, 4, 4)), "ReLU": (nn.ReLU, (2, 4, 4, 4)), "SiLU": (nn.SiLU, (2, 4, 4, 4)),
    "GELU": (nn.GELU, (2, 4, 4, 4)), "Dropout": (lambda: nn.Dropout(0.5, rng=0), (2, 4, 4, 4)),
    "Upsample": (nn.Upsample, (2, 4, 4, 4)), "AvgPool2d": (nn.AvgPool2d, (2, 4, 4, 4)),
}
# models: build(dtype) and (x, *conditioning) in float64, as a sampler passes them
MODELS = {
    "MLPDenoiser": (lambda d: MLPDenoiser(width=8, n_blocks=1, emb_dim=4, rng=0, dtype=d),
                    lambda: [randn(3, 2), np.array([0, 5, 9])]),
    "UNet": (lambda d: UNet(UNetConfig(base_channels=4, channel_mults=(1, 2), num_groups=2, emb_dim=8), dtype=d),
             lambda: [randn(2, 1, 8, 8), np.array([1, 7])]),
    "MNISTClassifier": (lambda d: MNISTClassifier(channels=(8, 16), feature_dim=8, dtype=d),
                        lambda: [np.random.default_rng(0).random((2, 1, 28, 28))]),
}
# takes integer indices, not floats: a float input is a DtypeError too
INDEX_LAYERS = {"Embedding"}


def test_every_layer_and_model_is_covered_by_these_tests():
    modules = [tinydiff.nn, tinydiff.models.mlp, tinydiff.models.unet, tinydiff.models.classifier]
    found = {name for m in modules for name, obj in vars(m).items()
             if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj is not nn.Module}
    covered = set(LAYERS) | set(PARAMETER_FREE) | set(MODELS) | INDEX_LAYERS | {"ResidualBlock"}  # (MLPBlock's old name)
    assert found <= covered, f"add {sorted(found - covered)} to the dtype-rule tables"


@pytest.mark.parametrize("name", LAYERS)
def test_float32_layer_refuses_float64_input_naming_the_layer_and_the_fix(name):
    build, inputs = LAYERS[name]
    message = rf"^{name} (has float32 parameters|computes in float32) but \w+ is float64\..*astype\(np\.float32\)"
    with pytest.raises(DtypeError, match=message + r".*dtype=np\.float64"):
        build(F32)(*inputs(F64))


@pytest.mark.parametrize("name", LAYERS)
def test_float64_layer_refuses_float32_input(name):
    build, inputs = LAYERS[name]
    with pytest.raises(DtypeError, match=rf"^{name} (has float64 parameters|computes in float64) but"):
        build(F64)(*inputs(F32))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", LAYERS)
def test_layer_with_matching_dtype_runs_and_keeps_it(name, dtype):
    build, inputs = LAYERS[name]
    out = build(dtype)(*inputs(dtype))
    assert out.dtype == dtype


def test_a_dtype_error_is_a_type_error():
    with pytest.raises(TypeError):
        nn.Linear(3, 2, rng=0)(randn(4, 3))


def test_integer_input_is_converted_to_the_layer_dtype():
    assert nn.Linear(3, 2, rng=0)(np.ones((4, 3), dtype=np.int64)).dtype == F32


def test_embedding_refuses_float_indices():
    with pytest.raises(DtypeError, match="integers"):
        nn.Embedding(4, 2, rng=0)(np.array([0.0, 1.0]))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("name", PARAMETER_FREE)
def test_parameter_free_layer_keeps_the_input_dtype(name, dtype):
    build, shape = PARAMETER_FREE[name]
    layer = build()
    y = layer(randn(*shape, dtype=dtype))
    assert y.dtype == dtype and layer.backward(np.ones_like(y)).dtype == dtype


@pytest.mark.parametrize("name", MODELS)
def test_float32_model_casts_float64_inputs_at_its_boundary(name):
    build, inputs = MODELS[name]
    model = build(F32)
    out = model(*inputs())
    assert out.dtype == F32
    if name != "MNISTClassifier":                       # the denoisers return dL/dx in the dtype x came in
        assert model.backward(np.ones_like(out)).dtype == F64


def test_error_from_inside_a_resblock_names_the_resblock_not_its_groupnorm():
    block = nn.ResBlock(4, 4, emb_dim=3, num_groups=2, rng=0)
    with pytest.raises(DtypeError, match=r"^ResBlock has") as err:
        block(image(F64), randn(2, 3, dtype=F32))
    assert "GroupNorm" not in str(err.value)


def test_gradient_checks_still_run_float64_layers_on_float64_inputs():
    nn.assert_gradients_ok(nn.Sequential(nn.Linear(3, 4, rng=0, dtype=F64), nn.SiLU(), nn.LayerNorm(4, dtype=F64)),
                           randn(2, 3))
