"""The equal-NFE comparison of MNIST models (tinydiff.bench.nfe_mnist, `evaluate --nfe`), at tiny sizes."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tinydiff.bench.nfe_mnist import Cell, candidates_for, compare_at_equal_nfe, format_table, steps_for_nfe
from tinydiff.cli import main
from tinydiff.config import TrainConfig
from tinydiff.data.toy2d import Standardizer
from tinydiff.flow import FlowNetwork
from tinydiff.models.unet import UNet, UNetConfig
from tinydiff.processes import LinearInterpolant
from tinydiff.schedules import NoiseSchedule
from tinydiff.trained import TrainedDenoiser

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "checkpoints" / "mnist_conditional.npz"
VP = SimpleNamespace(process=NoiseSchedule.linear(1000), prediction_type="epsilon", objective="ddpm")
FLOW = SimpleNamespace(process=LinearInterpolant(), prediction_type="velocity", objective="flow")


@pytest.mark.parametrize("model, sampler, nfe, steps", [
    (VP, "ddim", 4, 4), (VP, "dpm++2m", 3, 3), (VP, "heun", 3, 2),          # sigma-frame Heun: its last step is Euler
    (FLOW, "euler-t", 1, 1), (FLOW, "midpoint-t", 4, 2), (FLOW, "heun-t", 8, 4), (FLOW, "dpm++2m", 2, 2)])
def test_steps_for_nfe_counts_the_model_calls(model, sampler, nfe, steps):
    assert steps_for_nfe(model, sampler, nfe) == steps


def test_two_call_samplers_cannot_spend_an_odd_nfe():
    assert steps_for_nfe(FLOW, "midpoint-t", 1) is None and steps_for_nfe(FLOW, "heun-t", 3) is None


def test_candidates_resolve_plain_names_and_keep_those_that_apply():
    assert candidates_for(FLOW, ["heun", "ddim"]) == ["heun-t", "ddim"]
    assert candidates_for(VP, ["midpoint", "ddim"]) == ["ddim"]                  # no midpoint for a diffusion model
    assert candidates_for(FLOW) == ["euler-t", "midpoint-t", "heun-t", "dpm++2m"]
    with pytest.raises(ValueError, match="none of the samplers"):
        candidates_for(VP, ["midpoint"])


def tiny_trained(objective: str) -> TrainedDenoiser:
    net = UNet(UNetConfig(base_channels=4, channel_mults=(1, 2), num_groups=2, emb_dim=8, num_classes=10), rng=0)
    net.eval()
    std = Standardizer(np.full((1, 28, 28), 0.5), np.full((1, 28, 28), 0.5))
    if objective == "flow":
        return TrainedDenoiser(FlowNetwork(net), LinearInterpolant(), "velocity", std, TrainConfig(objective="flow"),
                               objective="flow")
    return TrainedDenoiser(net, NoiseSchedule.linear(1000), "epsilon", std)


class FakeJudge:
    """FD = 100 x the mean pixel (so samplers differ), accuracy 1, KID 0; floor FD 10."""

    def __call__(self, images, labels=None):
        return {"fd": 100.0 * float(images.mean()), "kid": (0.0, 0.0), "accuracy": 1.0}

    def floor(self, n):
        return {"fd": 10.0, "kid": (0.0, 0.0)}


def test_each_cell_runs_the_pilot_winner_at_full_n():
    models = {"diffusion": tiny_trained("ddpm"), "flow": tiny_trained("flow")}
    cells = compare_at_equal_nfe(models, FakeJudge(), nfes=(1, 2), n=4, pilot_n=2, batch_size=4, log=lambda s: None)
    assert [(c.model, c.nfe) for c in cells] == [("diffusion", 1), ("diffusion", 2), ("flow", 1), ("flow", 2)]
    for c in cells:
        assert c.sampler == min(c.pilot, key=c.pilot.get)
        assert steps_for_nfe(models[c.model], c.sampler, c.nfe) == c.steps
    assert set(cells[3].pilot) == {"euler-t", "midpoint-t", "heun-t", "dpm++2m"}   # all four can spend 2
    assert set(cells[2].pilot) == {"euler-t", "dpm++2m"}                           # only two can spend 1


def test_a_cell_no_candidate_can_fill_is_reported_empty():
    cells = compare_at_equal_nfe({"flow": tiny_trained("flow")}, FakeJudge(), nfes=(1,), n=4, samplers=["midpoint"],
                                 log=lambda s: None)
    assert cells[0].sampler is None
    table = format_table(cells, FakeJudge().floor(4), 4, 2.0, {"flow": tiny_trained("flow")}, pilot_n=0)
    assert "| 1 | flow | (none makes 1) |" in table


def test_the_table_judges_each_cell_against_the_bar():
    floor = {"fd": 2.0, "kid": (0.0, 0.0)}
    good = Cell("a", 8, "ddim", 8, accuracy=0.99, fd=19.0, kid=(1.0, 0.1))
    blurry = Cell("a", 4, "ddim", 4, accuracy=0.99, fd=21.0, kid=(1.0, 0.1))
    wrong = Cell("a", 2, "ddim", 2, accuracy=0.96, fd=3.0, kid=(1.0, 0.1))
    assert good.meets_bar(floor["fd"]) and not blurry.meets_bar(floor["fd"]) and not wrong.meets_bar(floor["fd"])
    table = format_table([good, blurry, wrong], floor, 10, 2.0, {"a": tiny_trained("ddpm")}, pilot_n=0)
    assert "| 8 | a | ddim x 8 | 99.0 % | 19.00 | 9.5x | 1.000 | yes |" in table
    assert table.index("| 2 | a |") < table.index("| 4 | a |") < table.index("| 8 | a |")   # sorted by NFE


def test_evaluate_refuses_compare_without_nfe(capsys):
    assert main(["evaluate", "--checkpoint", str(SHIPPED), "--compare", str(SHIPPED)]) == 2
    assert "add --nfe" in capsys.readouterr().err


def test_evaluate_nfe_takes_one_guidance_scale(capsys):
    assert main(["evaluate", "--checkpoint", str(SHIPPED), "--nfe", "1,2", "--guidance", "1,2"]) == 2
    assert "one --guidance scale" in capsys.readouterr().err


@pytest.mark.mnist
def test_evaluate_nfe_writes_the_table_of_two_models(tmp_path):
    runs = {}
    for objective in ("ddpm", "flow"):
        out = tmp_path / objective
        assert main(["train", "--data", "mnist", "--conditional", "--objective", objective, "--base-channels", "8",
                     "--n-train", "64", "--steps", "2", "--batch-size", "4", "--out", str(out), "--quiet"]) == 0
        runs[objective] = out / "model.npz"
    md = tmp_path / "nfe.md"
    assert main(["evaluate", "--checkpoint", str(runs["ddpm"]), "--compare", str(runs["flow"]), "--nfe", "1,2",
                 "--n", "20", "--pilot-n", "10", "--markdown", str(md)]) == 0
    text = md.read_text()
    for name in ("ddpm", "flow"):
        for nfe in (1, 2):
            assert f"| {nfe} | {name} |" in text
    assert "n = 20 per cell" in text and "sha256" in text and "--nfe 1,2" in text


FLOW_SHIPPED = SHIPPED.parent / "mnist_flow.npz"


@pytest.mark.skipif(not FLOW_SHIPPED.exists(), reason="mnist_flow.npz is not shipped")
def test_the_shipped_flow_checkpoint_is_the_conditional_unet_trained_with_flow_matching():
    from tinydiff.trained import load_trained

    m = load_trained(FLOW_SHIPPED)
    assert (m.objective, m.prediction_type, m.num_classes, m.step) == ("flow", "velocity", 10, 6000)
    assert m.sampling_defaults["sampler"] == "midpoint-t"             # `sample` needs no flag to use it
    x = m.sample(2, label=[3, 7], sampler="euler", steps=2)            # NFE 2: where it meets the MNIST bar
    assert x.shape == (2, 1, 28, 28) and 0 <= x.min() and x.max() <= 1
