"""``python -m tinydiff train-classifier --out PATH``: train the MNIST judge used by the image metrics (reproduces
``data/classifier/mnist_classifier.npz``; see docs/mnist.md for the time and accuracy it reached)."""

from __future__ import annotations

import functools


def add_arguments(p):
    p.add_argument("--out", default="data/classifier/mnist_classifier.npz", help="where to write the weights (.npz)")
    p.add_argument("--epochs", type=int, default=3, help="passes over the 60,000 training images (default 3)")
    p.add_argument("--batch-size", type=int, default=128, help="images per optimiser step (default 128)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate, after warm-up and before the "
                                                         "cosine decay (default 2e-3)")
    p.add_argument("--max-shift", type=int, default=2, help="augmentation: random shifts of up to this many pixels (default 2; "
                                                              "0 turns it off)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, the batch order and the "
                                                       "shifts (default 0)")
    p.add_argument("--data", default=None,
                   help="folder with the MNIST files (default: $TINYDIFF_DATA/mnist or data/mnist)")


def run(args):
    from tinydiff.bench.machine import machine_summary
    from tinydiff.data.mnist import load_mnist_float
    from tinydiff.models.classifier import save_classifier, train_classifier

    x_train, y_train = load_mnist_float(args.data, split="train")
    x_test, y_test = load_mnist_float(args.data, split="test")
    model, hist = train_classifier(x_train, y_train.astype(int), x_test, y_test.astype(int), epochs=args.epochs,
                                   batch_size=args.batch_size, lr=args.lr, max_shift=args.max_shift, rng=args.seed,
                                   log=functools.partial(print, flush=True))
    digest = save_classifier(model, args.out)
    print(f"test accuracy {hist['test_accuracy'][-1]:.4f} after {args.epochs} epochs in {hist['seconds']:.0f} s "
          f"on {machine_summary()}")
    print(f"wrote {args.out}\nsha256 {digest}")
    return 0
