"""The benchmark suite: it runs without PyTorch at tiny sizes and prints its table; with PyTorch the two networks agree."""

import numpy as np
import pytest

from tinydiff import bench
from tinydiff.cli import main


def test_tiny_bench_without_torch_prints_a_table_of_every_benchmark(capsys):
    assert main(["bench", "mlp", "unet", "sample", "--tiny", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "BLAS" in out
    for name in ("| mlp | 4 |", "| unet | 4 |", "| sample mlp | 4 |", "| sample unet | 4 |"):
        assert name in out


def test_time_alternating_gives_one_sample_per_repeat_for_each_side():
    times = bench.time_alternating({"a": lambda: None, "b": lambda: None}, repeats=3, warmup=1, sample_seconds=1e-4)
    assert set(times) == {"a", "b"} and all(len(v) == 3 and min(v) >= 0 for v in times.values())


def test_ratio_is_the_ratio_of_medians_and_the_table_flags_a_missed_target():
    row = bench.Row("mlp", 32, ours=[2.0, 3.0, 10.0], torch=[1.0, 2.0, 3.0])
    assert row.ratio() == pytest.approx(1.5)
    assert "1.50 MISSED" in bench.format_table([row])


def test_training_flops_of_the_mlp_count_its_matrix_products():
    model = bench.make_mlp(tiny=True)          # width 32, 2 blocks, emb_dim 16: input 48 -> 32
    x, t, _ = bench.make_batch(model, 5)
    assert bench.forward_flops(model, x, t) == 2 * 5 * (48 * 32 + 2 * 32 * 32 + 32 * 2)


def test_a_training_step_lowers_the_loss_on_a_fixed_batch():
    model = bench.make_mlp(tiny=True)
    step = bench.TrainStep(model, *bench.make_batch(model, 8), lr=1e-2)
    first = step()
    for _ in range(20):
        last = step()
    assert last < first


@pytest.mark.parametrize("make", [bench.make_mlp, bench.make_unet])
def test_pytorch_copy_gives_the_same_loss_and_gradients(make):
    pytest.importorskip("torch")
    from tinydiff.bench import torch_models as bench_torch

    model = make(tiny=True)
    x, t, target = bench.make_batch(model, 3)
    diff = bench_torch.honesty_check(bench.TrainStep(model, x, t, target),
                                     bench_torch.TorchTrainStep(model, x, t, target))
    assert diff < bench.GRAD_TOLERANCE


def test_honesty_check_fails_when_the_networks_differ():
    pytest.importorskip("torch")
    from tinydiff.bench import torch_models as bench_torch

    model = bench.make_mlp(tiny=True)
    x, t, target = bench.make_batch(model, 3)
    theirs = bench_torch.TorchTrainStep(model, x, t, target)
    model.output.params["bias"] += np.float32(0.5)              # tinydiff's copy no longer matches
    assert bench_torch.honesty_check(bench.TrainStep(model, x, t, target), theirs) > bench.GRAD_TOLERANCE


def test_each_row_has_its_own_target_and_cpu_ratio():
    from tinydiff.bench.table import target_for
    from tinydiff.bench.timing import Samples

    assert (target_for("mlp", 256), target_for("mlp", 1024), target_for("mlp (layers)", 32)) == (0.5, 0.6, None)
    assert (target_for("unet (NCHW)", 64), target_for("unet (channels_last)", 64), target_for("sample unet", 64)) == \
        (0.8, 1.0, 0.8)
    row = bench.Row("mlp", 32, ours=Samples([1.0], cpu=[2.0]), torch=Samples([2.0], cpu=[2.0]))
    assert row.cpu_ratio() == 1.0 and "| 0.50 ok | 1.00 |" in bench.format_table([row])


def test_bench_threads_times_1_and_2_threads_in_turn_with_the_same_loss():
    from tinydiff.bench.threads import CONFIGS, compare_threads

    lines = []
    times = compare_threads(batch=2, repeats=1, tiny=True, out=lines.append)
    assert set(times) == set(CONFIGS) and all(len(t) == 1 for t in times.values())
    assert "ratio to 1 thread" in "\n".join(lines)
