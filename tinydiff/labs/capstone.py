"""The capstone's automatic check: two class-conditional MNIST generators at equal NFE, judged by the shipped classifier.

The student trains a diffusion model and a flow-matching model (or any two generators of the library), draws
``n`` = 1000 digits from each, 100 per class, with the same number of network evaluations (NFE), and submits one
``.npz`` holding, for each model NAME:

    images_NAME   (1000, 1, 28, 28) float in [0, 1]      labels_NAME   (1000,) ints 0..9      nfe_NAME   an int

The thresholds are stated up front (docs/course.md) and fixed here; they are set from the shipped checkpoint
(docs/mnist.md: guidance 1, n = 1000: FD 5.3 against a floor of 4.5, accuracy 0.94, near-copies 0.005):

    accuracy of the judge on the requested labels   >= 0.85          (2 points per model)
    FD against the 10,000 test images               <= 3 x the floor  (2 points; the floor: 1000 training images)
    near-copies of training images                  <= 0.05           (1 point)
    equal NFE for the two models, at most 100       (required: otherwise the comparison scores 0)

    python -m tinydiff.labs.capstone samples.npz [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

N_SAMPLES = 1000
MIN_ACCURACY = 0.85
MAX_FD_OVER_FLOOR = 3.0
MAX_COPIES = 0.05
MAX_NFE = 100
POINTS = {"accuracy": 2.0, "fd": 2.0, "memorisation": 1.0}


def read_submission(path) -> dict[str, dict]:
    """{name: {"images", "labels", "nfe"}} from the submitted .npz, with the shapes checked (ValueError says what)."""
    with np.load(path) as f:
        names = sorted(k[len("images_"):] for k in f.files if k.startswith("images_"))
        if len(names) != 2:
            raise ValueError(f"{path}: expected images_NAME for exactly two models, found {names or 'none'}")
        out = {}
        for name in names:
            for key in ("images", "labels", "nfe"):
                if f"{key}_{name}" not in f.files:
                    raise ValueError(f"{path}: images_{name} needs {key}_{name} as well")
            images, labels = np.asarray(f[f"images_{name}"], np.float32), np.asarray(f[f"labels_{name}"])
            if images.shape != (N_SAMPLES, 1, 28, 28) or labels.shape != (N_SAMPLES,):
                raise ValueError(f"{path}: {name}: expected images ({N_SAMPLES}, 1, 28, 28) and labels ({N_SAMPLES},), "
                                 f"got {images.shape} and {labels.shape}")
            if images.min() < -1e-3 or images.max() > 1 + 1e-3 or not np.all(np.isfinite(images)):
                raise ValueError(f"{path}: {name}: images must be finite and in [0, 1] (undo the [-1, 1] scaling)")
            out[name] = dict(images=images, labels=labels.astype(np.int64), nfe=int(f[f"nfe_{name}"]))
    return out


def score_model(metrics: dict, floor_fd: float) -> list[dict]:
    """Gradescope-style entries for one model's metrics {"accuracy", "fd", "copies"} against the thresholds."""
    checks = [
        ("accuracy", metrics["accuracy"] >= MIN_ACCURACY,
         f"judge accuracy {metrics['accuracy']:.3f} (need >= {MIN_ACCURACY})"),
        ("fd", metrics["fd"] <= MAX_FD_OVER_FLOOR * floor_fd,
         f"FD {metrics['fd']:.2f} against the floor {floor_fd:.2f} (need <= {MAX_FD_OVER_FLOOR:g} x floor = "
         f"{MAX_FD_OVER_FLOOR * floor_fd:.2f})"),
        ("memorisation", metrics["copies"] <= MAX_COPIES,
         f"near-copies of training images {metrics['copies']:.4f} (need <= {MAX_COPIES})"),
    ]
    return [{"name": f"{metrics['name']}: {what}", "score": POINTS[what] if ok else 0.0, "max_score": POINTS[what],
             "output": text} for what, ok, text in checks]


def check_capstone(path, classifier=None, data_root=None) -> dict:
    """Judge a submission: the results dict (Gradescope's format) with every metric and threshold in its output."""
    from tinydiff.data.mnist import load_mnist_float
    from tinydiff.metrics.images import class_accuracy, frechet_distance, memorization, real_data_floor
    from tinydiff.models.classifier import load_classifier

    models = read_submission(path)
    judge = classifier if classifier is not None else load_classifier()
    train_x, _ = load_mnist_float(data_root, "train", download=False)
    test_x, _ = load_mnist_float(data_root, "test", download=False)
    test_f = judge.embed(test_x)
    pick = np.random.default_rng(0).choice(len(train_x), 5000, replace=False)
    floor_fd = real_data_floor(judge.embed(train_x[pick]), test_f, N_SAMPLES, n_subsets=1)["fd"]
    tests = []
    nfes = {name: m["nfe"] for name, m in models.items()}
    equal = len(set(nfes.values())) == 1 and max(nfes.values()) <= MAX_NFE
    for name, m in models.items():
        acc, _ = class_accuracy(judge.predict(m["images"]), m["labels"])
        metrics = dict(name=name, accuracy=acc, fd=frechet_distance(judge.embed(m["images"]), test_f),
                       copies=memorization(m["images"], train_x, test_x[:2000])["samples_copies"])
        tests += score_model(metrics, floor_fd)
    if not equal:
        for t in tests:
            t["score"] = 0.0
            t["output"] += f"  [NFE {nfes} not equal or above {MAX_NFE}: the comparison is not at equal cost]"
    return {"score": sum(t["score"] for t in tests), "tests": tests,
            "output": f"floor FD (1000 training images vs the test set): {floor_fd:.2f}; NFE {nfes}"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinydiff.labs.capstone", description=__doc__.split("\n")[0])
    p.add_argument("samples", type=Path, help="the submitted .npz (images_NAME, labels_NAME, nfe_NAME for two models)")
    p.add_argument("--json", type=Path, help="also write the results here (Gradescope's results.json format)")
    args = p.parse_args(argv)
    results = check_capstone(args.samples)
    print(results["output"])
    for t in results["tests"]:
        print(f"  {t['score']:g} / {t['max_score']:g}  {t['name']}: {t['output']}")
    print(f"total {results['score']:g} / {sum(t['max_score'] for t in results['tests']):g}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
