"""``python -m tinydiff train-autoencoder --data mnist --out AE_DIR``: train the VAE of latent diffusion.

Writes AE_DIR/autoencoder.npz (weights, config, the latent scale factor s = 1 / std of the latents) and prints the
reconstruction error on the 10,000 test images and the shipped classifier's accuracy on those reconstructions. Then
``python -m tinydiff train --data mnist --conditional --latent AE_DIR/autoencoder.npz --out DIR`` diffuses in its
latent space. Every AutoencoderTrainConfig field is a flag (``kl_weight`` -> ``--kl-weight``).
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from tinydiff.commands.common import reports_errors


def add_arguments(p):
    from tinydiff.train_autoencoder import AutoencoderTrainConfig

    p.add_argument("--out", required=True, type=Path, help="folder for autoencoder.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-eval", action="store_true", help="skip the test-set reconstruction report")
    d = AutoencoderTrainConfig()
    for f in fields(AutoencoderTrainConfig):
        kind = {"int": int, "float": float, "str": str}[f.type]
        p.add_argument("--" + f.name.replace("_", "-"), type=kind, default=getattr(d, f.name),
                       choices=["mnist"] if f.name == "data" else None, help=f"(default {getattr(d, f.name)})")


def reconstruction_report(vae, classifier=None) -> dict:
    """Per-pixel MSE / MAE of decode(mu(x)) on the 10,000 test images, and the classifier's accuracy on them
    (beside its accuracy on the originals)."""
    from tinydiff.models.classifier import accuracy, load_classifier
    from tinydiff.train_autoencoder import evaluate_autoencoder, load_images

    x, y = load_images("test")
    report = evaluate_autoencoder(vae, x)
    clf = classifier or load_classifier()
    report["accuracy_reconstructed"] = accuracy(clf, vae.reconstruct(x), y.astype(int))
    report["accuracy_original"] = accuracy(clf, x, y.astype(int))
    return report


@reports_errors
def run(args):
    from tinydiff.train_autoencoder import AutoencoderTrainConfig, train_autoencoder

    config = AutoencoderTrainConfig(**{f.name: getattr(args, f.name) for f in fields(AutoencoderTrainConfig)})
    vae = train_autoencoder(config, args.out, progress=not args.quiet)
    print(f"{vae.num_parameters()} parameters; {config.steps} steps in {vae.train_seconds:.0f} s; "
          f"latent {vae.latent_shape}, scale factor {vae.scale_factor:.4f}; wrote {args.out / 'autoencoder.npz'}")
    if not args.no_eval:
        r = reconstruction_report(vae)
        print(f"test reconstructions: MSE {r['mse']:.5f}, MAE {r['mae']:.4f} per pixel; classifier accuracy "
              f"{100 * r['accuracy_reconstructed']:.2f} % (originals {100 * r['accuracy_original']:.2f} %)")
    return 0
