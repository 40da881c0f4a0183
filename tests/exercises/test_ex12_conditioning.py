"""Exercise 12.1: label dropout for classifier-free guidance training (Ho & Salimans 2022, Alg. 1)
(chapters/12_conditioning_and_guidance_on_digits.py)."""

import numpy as np
import pytest

from tinydiff.exercises.checks import expect_close, expect_true
from tinydiff.train import drop_labels

NULL = 10


@pytest.mark.ex12_1
def test_each_label_is_dropped_where_its_uniform_draw_is_below_p():
    labels = np.arange(8) % 10
    got = drop_labels(labels, 0.3, NULL, np.random.default_rng(0))
    u = np.random.default_rng(0).random(8)
    expect_close("ex12_1", "the labels after dropout (p = 0.3)", got, np.where(u < 0.3, NULL, labels), likely=[
        (np.where(u < 0.7, NULL, labels), "you dropped with probability 1 - p: keep the label when u >= p"),
        (np.where(u >= 0.3, NULL, labels), "the comparison is reversed: drop (null label) when u < p"),
    ], hint="one rng.random(B) draw; y = null_label where u < p, else the label")


@pytest.mark.ex12_1
def test_dropout_rate_keeps_labels_ints_and_never_touches_the_kept_ones():
    labels = np.random.default_rng(1).integers(0, 10, 20000)
    got = drop_labels(labels, 0.1, NULL, np.random.default_rng(2))
    expect_true("ex12_1", np.issubdtype(got.dtype, np.integer), f"the labels came back as {got.dtype}: keep ints "
                "(they index the embedding table)")
    frac = float(np.mean(got == NULL))
    expect_true("ex12_1", abs(frac - 0.1) < 0.01, f"{frac:.3f} of the labels were dropped, expected p = 0.1")
    kept = got != NULL
    expect_true("ex12_1", bool(np.all(got[kept] == labels[kept])), "a kept label changed: only dropped ones change")
    expect_true("ex12_1", bool(np.all(drop_labels(labels, 0.0, NULL, np.random.default_rng(3)) == labels)),
                "with p = 0 every label must be kept")
