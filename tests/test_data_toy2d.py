"""Specification of tinydiff.data.toy2d (generators, registry, Standardizer) and tinydiff.data.files (user files)."""

import numpy as np
import pytest

from tinydiff.data.files import load_point_file, load_points
from tinydiff.data.toy2d import (
    DATASETS,
    LABELLED,
    Standardizer,
    checkerboard,
    circles,
    gaussian_mixture_params,
    in_checkerboard,
    make_dataset,
)
from tinydiff.errors import DatasetError, TinydiffError

# ---- generators ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_gives_n_by_2_float64(name):
    x = make_dataset(name, 101, rng=0)
    assert x.shape == (101, 2) and x.dtype == np.float64 and np.all(np.isfinite(x))


@pytest.mark.parametrize("name", list(DATASETS))
def test_same_seed_gives_same_points_and_other_seed_differs(name):
    assert np.array_equal(make_dataset(name, 50, rng=3), make_dataset(name, 50, rng=3))
    assert not np.array_equal(make_dataset(name, 50, rng=3), make_dataset(name, 50, rng=4))


def test_generator_rng_is_used_and_advanced():
    g = np.random.default_rng(0)
    a, b = make_dataset("moons", 20, rng=g), make_dataset("moons", 20, rng=g)
    assert not np.array_equal(a, b)


@pytest.mark.parametrize("n", [0, -1, 2.5, "10"])
def test_bad_n_is_refused(n):
    with pytest.raises(DatasetError, match="positive integer"):
        make_dataset("moons", n, rng=0)


@pytest.mark.parametrize("name", list(DATASETS))
def test_sets_fit_in_the_documented_box(name):
    assert np.abs(make_dataset(name, 2000, rng=0)).max() < 3.5


def test_circles_are_continuous_rings_with_uniform_angles():
    x, y = circles(20_000, rng=0, return_labels=True)
    theta = np.arctan2(x[:, 1], x[:, 0])
    counts, _ = np.histogram(theta, bins=36, range=(-np.pi, np.pi))
    expected = len(x) / 36
    # A uniform angle gives ~555 +- 23 per 10-degree bin; clustered rings would leave bins near empty.
    assert counts.min() > 0.8 * expected and counts.max() < 1.2 * expected
    r = np.linalg.norm(x, axis=1)
    assert np.allclose(r[y == 0].mean(), 1.0, atol=0.01) and np.allclose(r[y == 1].mean(), 2.0, atol=0.01)
    assert r[y == 0].std() < 0.05  # radial noise only


def test_circles_share_points_in_proportion_to_circumference():
    _, y = circles(30_000, rng=0, return_labels=True)
    assert abs(np.mean(y == 1) - 2 / 3) < 0.01


def test_checkerboard_samples_lie_in_its_support_and_fill_eight_cells():
    x = checkerboard(5000, rng=0)
    assert in_checkerboard(x).all()
    cells = {tuple(c) for c in np.floor(x).astype(int)}
    assert len(cells) == 8


def test_in_checkerboard_rejects_the_empty_cells_and_the_outside():
    pts = np.array([[0.5, 0.5], [1.5, 0.5], [-0.5, -0.5], [-0.5, 0.5], [2.5, 0.5], [0.5, -2.5]])
    assert in_checkerboard(pts).tolist() == [True, False, True, False, False, False]


def test_in_checkerboard_rejects_wrong_shape():
    with pytest.raises(DatasetError, match=r"\(N, 2\)"):
        in_checkerboard(np.zeros((4, 3)))


# ---- labels and mixtures ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LABELLED)
def test_labelled_sets_return_int_labels_of_matching_length(name):
    x, y = make_dataset(name, 200, rng=0, return_labels=True)
    assert x.shape == (200, 2) and y.shape == (200,) and y.dtype == np.int64 and y.min() >= 0


def test_labels_do_not_change_the_points():
    x, _ = make_dataset("8gaussians", 100, rng=5, return_labels=True)
    assert np.array_equal(x, make_dataset("8gaussians", 100, rng=5))


@pytest.mark.parametrize("name", ["8gaussians", "25gaussians"])
def test_mixture_labels_name_the_mode_each_point_came_from(name):
    mix = gaussian_mixture_params(name)
    x, y = make_dataset(name, 3000, rng=0, return_labels=True)
    nearest = np.argmin(((x[:, None, :] - mix.means[None]) ** 2).sum(-1), axis=1)
    assert np.array_equal(nearest, y)


def test_mixture_params_match_the_samples_moments():
    mix = gaussian_mixture_params("8gaussians")
    assert mix.means.shape == (8, 2) and mix.covs.shape == (8, 2, 2) and np.isclose(mix.weights.sum(), 1.0)
    x, y = make_dataset("8gaussians", 40_000, rng=0, return_labels=True)
    for k in range(8):
        assert np.allclose(x[y == k].mean(0), mix.means[k], atol=0.02)
        assert np.allclose(np.cov(x[y == k].T), mix.covs[k], atol=0.002)
    assert np.allclose(np.bincount(y) / len(y), mix.weights, atol=0.01)


def test_twenty_five_gaussians_sit_on_the_5x5_grid():
    means = gaussian_mixture_params("25gaussians").means
    assert sorted(set(means[:, 0])) == [-2, -1, 0, 1, 2] and len({tuple(m) for m in means}) == 25


def test_unlabelled_set_refuses_return_labels():
    with pytest.raises(DatasetError, match="has no labels"):
        make_dataset("checkerboard", 10, rng=0, return_labels=True)


def test_mixture_params_of_a_non_mixture_lists_the_mixtures():
    with pytest.raises(DatasetError, match="8gaussians, 25gaussians"):
        gaussian_mixture_params("moons")


# ---- registry -----------------------------------------------------------------------------------------------------


def test_unknown_dataset_error_lists_the_known_names():
    with pytest.raises(DatasetError) as info:
        make_dataset("spiral", 10)
    for name in DATASETS:
        assert name in str(info.value)
    assert isinstance(info.value, TinydiffError) and isinstance(info.value, ValueError)


def test_dataset_names_ignore_case_dashes_and_underscores():
    assert np.array_equal(make_dataset("Swiss-Roll", 10, rng=0), make_dataset("swiss_roll", 10, rng=0))


# ---- Standardizer -------------------------------------------------------------------------------------------------


def test_standardizer_gives_zero_mean_unit_std():
    z = Standardizer().fit_transform(make_dataset("swissroll", 1000, rng=0))
    assert np.allclose(z.mean(0), 0, atol=1e-12) and np.allclose(z.std(0), 1, atol=1e-12)


def test_standardizer_round_trip_through_a_npz_file(tmp_path):
    x = make_dataset("moons", 500, rng=0) * [3.0, 0.5] + [10.0, -2.0]
    s = Standardizer().fit(x)
    np.savez(tmp_path / "ckpt.npz", **{f"data_{k}": v for k, v in s.to_dict().items()})
    with np.load(tmp_path / "ckpt.npz", allow_pickle=False) as f:
        loaded = Standardizer.from_dict({"mean": f["data_mean"], "std": f["data_std"]})
    assert np.allclose(loaded.inverse_transform(s.transform(x)), x, atol=1e-12)


def test_standardizer_leaves_a_constant_feature_centred_not_divided_by_zero():
    x = np.c_[np.arange(10.0), np.full(10, 7.0)]
    z = Standardizer().fit_transform(x)
    assert np.all(np.isfinite(z)) and np.allclose(z[:, 1], 0)


def test_unfitted_standardizer_says_how_to_fit_it():
    with pytest.raises(DatasetError, match="fit"):
        Standardizer().transform(np.zeros((3, 2)))


def test_standardizer_from_dict_names_missing_keys():
    with pytest.raises(DatasetError, match="std"):
        Standardizer.from_dict({"mean": np.zeros(2)})


# ---- user files ---------------------------------------------------------------------------------------------------


def test_npy_file_loads_as_float64(tmp_path):
    pts = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.save(tmp_path / "p.npy", pts)
    x = load_point_file(tmp_path / "p.npy")
    assert x.dtype == np.float64 and np.array_equal(x, pts)


@pytest.mark.parametrize("header", ["", "x,y\n"])
def test_csv_file_loads_with_or_without_header(tmp_path, header):
    (tmp_path / "p.csv").write_text(header + "1,2\n3.5,-4\n5,6e-1\n")
    assert np.array_equal(load_point_file(tmp_path / "p.csv"), [[1, 2], [3.5, -4], [5, 0.6]])


def test_single_column_csv_gives_d_equal_1(tmp_path):
    (tmp_path / "p.csv").write_text("value\n1\n2\n3\n")
    assert load_point_file(tmp_path / "p.csv").shape == (3, 1)


def test_missing_file_error_names_the_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        load_point_file(tmp_path / "nope.npy")


def test_unknown_extension_error_lists_the_known_ones(tmp_path):
    (tmp_path / "p.txt").write_text("1,2\n")
    with pytest.raises(DatasetError, match=r"\.npy or \.csv"):
        load_point_file(tmp_path / "p.txt")


def test_corrupt_npy_is_reported_as_unreadable(tmp_path):
    (tmp_path / "p.npy").write_bytes(b"this is not a numpy file")
    with pytest.raises(DatasetError, match="not a readable .npy"):
        load_point_file(tmp_path / "p.npy")


def test_pickled_object_array_is_refused(tmp_path):
    np.save(tmp_path / "p.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match="pickle"):
        load_point_file(tmp_path / "p.npy")


def test_ragged_csv_is_reported_with_the_expected_format(tmp_path):
    (tmp_path / "p.csv").write_text("1,2\n3\n")
    with pytest.raises(DatasetError, match="comma-separated"):
        load_point_file(tmp_path / "p.csv")


def test_one_dimensional_npy_is_refused_with_a_reshape_hint(tmp_path):
    np.save(tmp_path / "p.npy", np.arange(5.0))
    with pytest.raises(DatasetError, match=r"reshape\(-1, 1\)"):
        load_point_file(tmp_path / "p.npy")


def test_nan_values_are_refused_with_their_row(tmp_path):
    np.save(tmp_path / "p.npy", np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]))
    with pytest.raises(DatasetError, match=r"non-finite.*\[1\]"):
        load_point_file(tmp_path / "p.npy")


def test_too_few_points_are_refused(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((1, 2)))
    with pytest.raises(DatasetError, match="at least 2"):
        load_point_file(tmp_path / "p.npy")


def test_load_points_takes_a_dataset_name():
    assert np.array_equal(load_points("moons", 30, rng=1), make_dataset("moons", 30, rng=1))


def test_load_points_subsamples_a_file_without_replacement(tmp_path):
    np.save(tmp_path / "p.npy", np.arange(200.0).reshape(100, 2))
    x = load_points(str(tmp_path / "p.npy"), n=40, rng=0)
    assert x.shape == (40, 2) and len(np.unique(x[:, 0])) == 40
    assert load_points(tmp_path / "p.npy").shape == (100, 2)


def test_load_points_refuses_more_points_than_the_file_holds(tmp_path):
    np.save(tmp_path / "p.npy", np.zeros((10, 2)))
    with pytest.raises(DatasetError, match="only 10"):
        load_points(tmp_path / "p.npy", n=11)


def test_load_points_with_neither_name_nor_path_lists_both_options():
    with pytest.raises(DatasetError, match="moons.*\\.npy"):
        load_points("mooons", 10)
