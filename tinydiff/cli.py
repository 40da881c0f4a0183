"""``python -m tinydiff``: the command-line front door. It parses arguments and calls the library, nothing more.

Each subcommand lives in the module that owns the work; this file only wires them up, importing lazily so that
``--help`` is instant (numba and matplotlib are not imported until a command runs).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with `add_arguments(parser)` and `run(args)`, one-line help). Order is the order in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "chapter": ("tinydiff.commands.chapter", "run one of the chapters (lectures) in chapters/ and write its figures"),
    "train": ("tinydiff.commands.train", "train a denoiser (MLP on points, U-Net on --data mnist); every setting is a flag"),
    "train-autoencoder": ("tinydiff.commands.train_autoencoder",
                          "train the VAE of latent diffusion on MNIST: --data mnist --out AE_DIR"),
    "sample": ("tinydiff.commands.sample", "draw points or images from a trained model: --checkpoint DIR/model.npz --n N --out F"),
    "reflow": ("tinydiff.commands.reflow",
               "rectified flow: retrain a flow model on its own (noise, sample) pairs: --checkpoint DIR/model.npz --out D2"),
    "demo": ("tinydiff.commands.demo", "train, sample, evaluate and draw the whole story on a toy set (~1 minute)"),
    "quality": ("tinydiff.commands.quality", "the 2D quality bar: train each toy set, sample, MMD test, write the table"),
    "train-classifier": ("tinydiff.commands.train_classifier",
                         "train the MNIST judge used by the image metrics: --out data/classifier/mnist_classifier.npz"),
    "evaluate": ("tinydiff.commands.evaluate", "FD, KID, class accuracy and memorisation of a MNIST model's samples"),
    "book": ("tinydiff.commands.book", "run every chapter into a notebook and an HTML page with its figures: --out DIR"),
    "bench": ("tinydiff.commands.bench", "time training steps and sampling, optionally against PyTorch: bench all --vs-torch"),
}


EPILOG = """\
start with:  python -m tinydiff demo            (about a minute; figures in demo_out/)
then read:   python -m tinydiff chapter 1 ... 20 (each `--quick` in about a minute or less)

more tools, outside this command:
  python -m tinydiff.exercises list | make-student --out DIR | grade DIR
                                        homework: exercises from the library, a student copy, grading
  python -m tinydiff.bench_nfe          sampler accuracy vs number of model evaluations (NFE), docs/samplers.md
  python -m tinydiff COMMAND --help     the options of one command
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tinydiff",
        description="tinydiff: diffusion models from scratch in NumPy and Numba.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv                              # the command line, as typed (train stores it in the checkpoint)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return importlib.import_module(args._module).run(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
