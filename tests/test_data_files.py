"""Property tests (hypothesis) of the point-file loaders (tinydiff.data.files): what goes in comes out, exactly."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinydiff.data.files import MAX_ABS, load_point_file
from tinydiff.errors import DatasetError

FAST = settings(max_examples=30, deadline=None)
COORD = st.floats(-1e100, 1e100, allow_nan=False, allow_infinity=False)
POINTS = st.tuples(st.integers(2, 40), st.integers(1, 5)).flatmap(lambda shape: arrays(np.float64, shape, elements=COORD))


def write_and_load(name, write):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        write(path)
        return load_point_file(path)


def csv_text(x, header=None):
    rows = [",".join(repr(float(v)) for v in row) for row in x]    # repr: the shortest string that reads back exactly
    return "\n".join(([header] if header else []) + rows) + "\n"


@FAST
@given(x=POINTS)
def test_npy_round_trip_is_exact(x):
    np.testing.assert_array_equal(write_and_load("p.npy", lambda p: np.save(p, x)), x)


@FAST
@given(x=POINTS, header=st.sampled_from([None, "x,y", "a"]))
def test_csv_round_trip_is_exact_with_or_without_a_header(x, header):
    got = write_and_load("p.csv", lambda p: p.write_text(csv_text(x, header), encoding="utf-8"))
    np.testing.assert_array_equal(got, x)


@FAST
@given(x=POINTS, header=st.sampled_from([None, "x,y"]))
def test_csv_with_a_utf8_byte_order_mark_keeps_its_first_row(x, header):
    got = write_and_load("p.csv", lambda p: p.write_text(csv_text(x, header), encoding="utf-8-sig"))
    np.testing.assert_array_equal(got, x)


def test_csv_with_a_byte_order_mark_and_no_header_keeps_all_rows(tmp_path):
    (tmp_path / "p.csv").write_bytes(b"\xef\xbb\xbf1.5,2\n3,4\n")
    np.testing.assert_array_equal(load_point_file(tmp_path / "p.csv"), [[1.5, 2.0], [3.0, 4.0]])


@FAST
@given(x=POINTS, big=st.floats(1e151, 1.7e308), sign=st.sampled_from([1.0, -1.0]), ext=st.sampled_from([".npy", ".csv"]))
def test_coordinates_too_large_to_standardise_are_refused_at_load(x, big, sign, ext):
    x = x.copy()
    x[len(x) // 2, -1] = sign * big

    def write(p):
        np.save(p, x) if ext == ".npy" else p.write_text(csv_text(x))

    with pytest.raises(DatasetError, match=r"coordinates as large as .*Rescale the points first"):
        write_and_load("p" + ext, write)


def test_data_around_1e300_is_refused(tmp_path):
    np.save(tmp_path / "p.npy", np.random.default_rng(0).standard_normal((50, 2)) * 1e300)
    with pytest.raises(DatasetError, match="overflow"):
        load_point_file(tmp_path / "p.npy")


def test_the_largest_accepted_coordinates_standardise_to_finite_values(tmp_path):
    x = np.array([[MAX_ABS, -MAX_ABS], [-MAX_ABS, MAX_ABS], [0.0, 0.0]])
    np.save(tmp_path / "p.npy", x)
    loaded = load_point_file(tmp_path / "p.npy")
    assert np.all(np.isfinite(loaded.std(axis=0))) and np.all(loaded.std(axis=0) > 0)
