"""Every bad input a user can give the command line ends in exit code 2 and one line naming the problem (and the fix),
never a traceback. One test per case of issue 18, through ``main([...])`` as the shell would run it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinydiff import checkpoint as ckpt
from tinydiff.cli import main

CHECKPOINTS = Path(__file__).resolve().parents[1] / "data" / "checkpoints"
TINY = ["--data", "moons", "--n-train", "256", "--T", "50", "--batch-size", "32", "--width", "16", "--n-blocks", "1",
        "--emb-dim", "8", "--warmup-steps", "5", "--quiet"]


def run_cli(argv, capsys) -> tuple[int, str]:
    """(exit code, stderr) of ``python -m tinydiff ARGV`` run in this process (argparse errors exit by SystemExit)."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def one_line_error(code: int, err: str) -> str:
    """Exit code 2 and one line of error (argparse's usage lines aside); returns that line."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1, err
    assert "error" in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A small finished run (3 steps)."""
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), *TINY, "--steps", "3"]) == 0
    return out


def damaged(tmp_path, change) -> Path:
    """A copy of the shipped 8gaussians checkpoint with ``change(arrays)`` applied."""
    arrays = ckpt.load_checkpoint(CHECKPOINTS / "8gaussians.npz")
    change(arrays)
    return ckpt.save_checkpoint(tmp_path / "model.npz", arrays)


def sample_args(checkpoint, tmp_path, *more):
    return ["sample", "--checkpoint", checkpoint, "--n", "5", "--steps", "5", "--out", tmp_path / "x.npy", *more]


# ---- train: data loss -----------------------------------------------------------------------------------------------
def test_train_into_a_folder_holding_a_run_is_refused(run_dir, capsys):
    before = (run_dir / "model.npz").read_bytes()
    line = one_line_error(*run_cli(["train", "--out", run_dir, *TINY, "--steps", "2"], capsys))
    assert "already holds a run" in line and "--resume" in line and "--overwrite" in line
    assert (run_dir / "model.npz").read_bytes() == before


def test_resume_and_overwrite_together_are_refused(run_dir, capsys):
    assert "give one of them" in one_line_error(*run_cli(["train", "--out", run_dir, "--resume", "--overwrite"],
                                                         capsys))


def test_train_without_data_is_refused(tmp_path, capsys):
    assert "--data is required" in one_line_error(*run_cli(["train", "--out", tmp_path], capsys))


def test_non_finite_weights_never_replace_a_checkpoint_and_the_error_is_not_buried(tmp_path, capsys):
    out = tmp_path / "new" / "folder"                # divergence before the first checkpoint, in a new folder
    line = one_line_error(*run_cli(["train", "--out", out, *TINY, "--steps", "5", "--lr", "1e41",
                                    "--checkpoint-every", "1"], capsys))
    assert "diverged" in line and "No checkpoint was written" in line
    assert not (out / "model.npz").exists() and (out / "loss.csv").exists()


def test_a_rising_loss_stops_the_run(tmp_path, capsys):
    line = one_line_error(*run_cli(["train", "--out", tmp_path, *TINY, "--steps", "200", "--lr", "1.0"], capsys))
    assert "the loss rose from" in line and "--max-loss-rise 0" in line


@pytest.mark.parametrize("lr", ["0", "-0.001", "inf", "nan"])
def test_a_bad_learning_rate_is_refused_at_parse_time(tmp_path, capsys, lr):
    line = one_line_error(*run_cli(["train", "--out", tmp_path, *TINY, "--lr", lr], capsys))
    assert "--lr" in line
    assert not list(tmp_path.iterdir())                                   # nothing was started


def test_resume_refuses_flags_that_contradict_the_stored_run(run_dir, capsys):
    line = one_line_error(*run_cli(["train", "--out", run_dir, "--resume", "--lr", "0.1", "--data", "swissroll"],
                                   capsys))
    assert "--lr 0.1 (the run has 0.003)" in line and "--data swissroll (the run has moons)" in line


def test_resume_applies_steps_and_says_so(run_dir, tmp_path, capsys):
    shutil.copytree(run_dir, tmp_path / "run")
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--steps", "4", "--quiet"]) == 0
    assert "--steps 4 (the run had 3)" in capsys.readouterr().out


def test_bad_settings_fail_before_the_run_folder_is_made(tmp_path, capsys):
    one_line_error(*run_cli(["train", "--out", tmp_path / "new", *TINY, "--schedule", "linear", "--max-beta", "0.5"],
                            capsys))
    assert not (tmp_path / "new").exists()


def test_out_pointing_at_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert "is a file, not a folder" in one_line_error(*run_cli(["train", "--out", tmp_path / "f", *TINY], capsys))


@pytest.mark.skipif(sys.platform == "win32" or __import__("os").geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_out_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o500)
    assert "cannot write" in one_line_error(*run_cli(["train", "--out", tmp_path / "ro", *TINY], capsys))


# ---- damaged checkpoints ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["meta/model", "schedule/betas"])
def test_a_checkpoint_missing_an_entry_is_one_line(tmp_path, capsys, key):
    path = damaged(tmp_path, lambda a: a.pop(key))
    line = one_line_error(*run_cli(sample_args(path, tmp_path), capsys))
    assert "lacks the entry" in line and str(path) in line


def test_a_checkpoint_missing_its_rng_cannot_resume(run_dir, tmp_path, capsys):
    shutil.copytree(run_dir, tmp_path / "run")
    arrays = ckpt.load_checkpoint(tmp_path / "run" / "model.npz")
    del arrays["meta/rng"]
    ckpt.save_checkpoint(tmp_path / "run" / "model.npz", arrays)
    line = one_line_error(*run_cli(["train", "--out", tmp_path / "run", "--resume", "--quiet"], capsys))
    assert "lacks the entry 'meta/rng'" in line


def test_a_checkpoint_with_invalid_json_is_one_line(tmp_path, capsys):
    path = damaged(tmp_path, lambda a: a.__setitem__("meta/config", np.array("{not json")))
    assert "JSON" in one_line_error(*run_cli(sample_args(path, tmp_path), capsys))


def test_a_checkpoint_with_betas_out_of_range_is_one_line(tmp_path, capsys):
    def bad_betas(a):
        a["schedule/betas"] = a["schedule/betas"] * 0 + 2.0
    path = damaged(tmp_path, bad_betas)
    assert "invalid value" in one_line_error(*run_cli(sample_args(path, tmp_path), capsys))


def test_random_bytes_named_model_npz_are_not_called_pickled_data(tmp_path, capsys):
    path = tmp_path / "model.npz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    line = one_line_error(*run_cli(sample_args(path, tmp_path), capsys))
    assert "not a .npz zip archive" in line and "pickle" not in line


# ---- sample: labels, guidance, output -------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["-1", "8", "9"])
def test_a_label_outside_0_to_k_minus_1_is_refused(tmp_path, capsys, label):
    path = CHECKPOINTS / "8gaussians_conditional.npz"
    assert "labels must be in 0..7" in one_line_error(*run_cli(sample_args(path, tmp_path, "--label", label), capsys))


def test_a_label_for_an_unconditional_model_is_refused(tmp_path, capsys):
    line = one_line_error(*run_cli(sample_args(CHECKPOINTS / "8gaussians.npz", tmp_path, "--label", "1"), capsys))
    assert "unconditional" in line


def test_guidance_nan_is_refused_at_parse_time(tmp_path, capsys):
    path = CHECKPOINTS / "8gaussians_conditional.npz"
    line = one_line_error(*run_cli(sample_args(path, tmp_path, "--label", "1", "--guidance", "nan"), capsys))
    assert "--guidance" in line and "finite" in line


def test_guidance_on_an_unconditional_model_is_refused(tmp_path, capsys):
    line = one_line_error(*run_cli(sample_args(CHECKPOINTS / "8gaussians.npz", tmp_path, "--guidance", "3"), capsys))
    assert "--guidance" in line and "unconditional" in line


def test_guidance_without_a_label_is_refused(tmp_path, capsys):
    path = CHECKPOINTS / "8gaussians_conditional.npz"
    line = one_line_error(*run_cli(sample_args(path, tmp_path, "--guidance", "3"), capsys))
    assert "--guidance" in line and "--label" in line


@pytest.mark.parametrize("name", ["folder", "s.txt"])
def test_sample_out_must_be_a_npy_or_csv_file_name(tmp_path, capsys, name):
    (tmp_path / "folder").mkdir()
    args = ["sample", "--checkpoint", CHECKPOINTS / "8gaussians.npz", "--n", "5", "--out", tmp_path / name]
    line = one_line_error(*run_cli(args, capsys))
    assert ("is a folder" in line) if name == "folder" else (".npy or .csv" in line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]          # no folder.npy, no s.txt.npy


def test_sampling_beyond_the_machines_memory_is_refused_up_front(tmp_path, capsys, monkeypatch):
    from tinydiff import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 10**6)                 # 1 MB free
    args = ["sample", "--checkpoint", CHECKPOINTS / "8gaussians.npz", "--n", "100000", "--batch-size", "100000",
            "--out", tmp_path / "x.npy"]
    line = one_line_error(*run_cli(args, capsys))
    assert "needs about" in line and "lower --batch-size" in line and not (tmp_path / "x.npy").exists()


def test_sampling_beyond_the_free_disk_is_refused_up_front(tmp_path, capsys, monkeypatch):
    import shutil as sh

    monkeypatch.setattr(sh, "disk_usage", lambda path: sh._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    args = ["sample", "--checkpoint", CHECKPOINTS / "8gaussians.npz", "--n", "1000", "--out", tmp_path / "x.npy"]
    assert "its disk has 1 KB free" in one_line_error(*run_cli(args, capsys))


# ---- evaluate, the NFE bench, the classifier -----------------------------------------------------------------------
@pytest.mark.parametrize("flags", [["--guidance", "a,b"], ["--guidance", "1,nan"], ["--sampler", "foo"]])
def test_evaluate_checks_its_flags_at_parse_time(capsys, flags):
    line = one_line_error(*run_cli(["evaluate", "--checkpoint", CHECKPOINTS / "mnist_conditional.npz", *flags],
                                   capsys))
    assert f"argument {flags[0]}" in line                                # argparse's, before any loading


def test_a_model_checkpoint_given_as_classifier_is_one_line(tmp_path, capsys):
    args = ["evaluate", "--checkpoint", CHECKPOINTS / "mnist_conditional.npz", "--classifier",
            CHECKPOINTS / "8gaussians.npz"]
    line = one_line_error(*run_cli(args, capsys))
    assert "not MNIST classifier weights" in line and "--checkpoint" in line


def test_evaluate_refuses_guidance_for_a_point_model(tmp_path, capsys):
    assert "point model" in one_line_error(*run_cli(["evaluate", "--checkpoint", CHECKPOINTS / "8gaussians.npz"],
                                                    capsys))


def test_an_image_checkpoint_given_to_the_nfe_bench_is_one_line(capsys):
    from tinydiff.bench_nfe import main as bench_nfe

    with pytest.raises(SystemExit) as exc:
        bench_nfe(["--checkpoint", str(CHECKPOINTS / "mnist_conditional.npz")])
    line = one_line_error(exc.value.code, capsys.readouterr().err)
    assert "image model" in line and "8gaussians" in line


def test_an_idx_header_announcing_2_billion_images_is_refused_before_allocating(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "mnist"
    folder.mkdir()
    header = bytes([0, 0, 8, 3]) + (0x7FFFFFFF).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (folder / "train-images-idx3-ubyte").write_bytes(header + bytes(784 * 3))
    monkeypatch.setenv("TINYDIFF_DATA", str(tmp_path))
    line = one_line_error(*run_cli(["train", "--data", "mnist", "--out", tmp_path / "run", "--quiet"], capsys))
    assert "(2147483647, 28, 28)" in line and "holds only 2352" in line


# ---- the real command line ------------------------------------------------------------------------------------------
def test_the_shell_sees_exit_code_2_and_one_line(tmp_path):
    cmd = [sys.executable, "-m", "tinydiff", "sample", "--checkpoint", str(CHECKPOINTS / "8gaussians.npz"), "--n",
           "5", "--out", str(tmp_path / "s.txt")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
