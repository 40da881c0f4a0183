"""The MNIST judge of ``python -m tinydiff evaluate``, as one object: the shipped classifier, the test set's features,
and the real-data floor at a given n.

    judge = DigitJudge()                       # loads the classifier and MNIST, embeds the 10,000 test images once
    floor = judge.floor(500)                   # {"fd", "kid"}: 500 training images against the test set
    score = judge(images, labels)              # {"accuracy", "fd", "kid"} of generated digits (n, 1, 28, 28) in [0, 1]

A metric alone means little: compare FD and KID with their floor at the same n (FD is biased upwards at small n;
``tinydiff.metrics.images``). The floor draws its training images with the seed given here, exactly as ``evaluate``
does, so a number computed through the judge and one printed by ``evaluate --seed S`` agree.
"""

from __future__ import annotations

import numpy as np

from tinydiff.metrics.images import class_accuracy, frechet_distance, kernel_distance, real_data_floor


class DigitJudge:
    """Accuracy, FD and KID of generated digits, with floors. ``classifier``: a path (default: the shipped weights),
    or an object with ``embed(images) -> (n, F)`` and ``predict(images) -> (n,)``; ``test_x``, ``train_x``: image
    arrays (n, 1, 28, 28) in [0, 1] (default: the MNIST test and training sets)."""

    def __init__(self, classifier=None, test_x=None, train_x=None, seed: int = 0):
        if classifier is None or not hasattr(classifier, "embed"):
            from tinydiff.models.classifier import load_classifier

            classifier = load_classifier(classifier)
        if test_x is None or train_x is None:
            from tinydiff.data.mnist import load_mnist_float

            test_x = load_mnist_float(split="test")[0] if test_x is None else test_x
            train_x = load_mnist_float(split="train")[0] if train_x is None else train_x
        self.classifier, self.test_x, self.train_x, self.seed = classifier, test_x, train_x, seed
        self.test_features = classifier.embed(test_x)        # (N_test, F), computed once
        self._floors = {}

    def floor(self, n: int) -> dict:
        """FD and KID (mean, std) of n random training images against the test set: a perfect generator's score."""
        if n not in self._floors:
            rng = np.random.default_rng(self.seed)
            pick = self.train_x[rng.choice(len(self.train_x), n, replace=False)]
            self._floors[n] = real_data_floor(self.classifier.embed(pick), self.test_features, n=n, rng=self.seed)
        return self._floors[n]

    def __call__(self, images, labels=None) -> dict:
        """{"fd", "kid": (mean, std)} of ``images`` against the test set, and "accuracy" on ``labels`` (n,) if given."""
        features = self.classifier.embed(images)
        score = {"fd": frechet_distance(features, self.test_features),
                 "kid": kernel_distance(features, self.test_features)}
        if labels is not None:
            score["accuracy"] = class_accuracy(self.classifier.predict(images), labels)[0]
        return score
