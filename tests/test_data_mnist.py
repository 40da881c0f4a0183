"""Specification of tinydiff.data.mnist: the IDX parser, verification, the download path (simulated, no network)."""

import gzip
import hashlib
import os
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest

from tinydiff.data import mnist
from tinydiff.data.mnist import (
    FILES,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    ChecksumError,
    IDXFormatError,
    MNISTNotFoundError,
    load_mnist,
    load_mnist_float,
    mnist_dir,
    read_idx,
    to_float_images,
)
from tinydiff.errors import DatasetError, TinydiffError


def idx_bytes(array: np.ndarray, type_code: int = 0x08, dtype=">u1") -> bytes:
    """The IDX encoding of ``array``: 0x0000 <type> <ndim>, big-endian int32 sizes, big-endian data."""
    head = bytes([0, 0, type_code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    return head + np.asarray(array, dtype=dtype).tobytes()


def fake_split(n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_fake_mnist(folder: Path, monkeypatch, split="train", compress=True):
    """Write a tiny MNIST-format split into folder and make its digests the expected ones. Returns (images, labels)."""
    images, labels = fake_split()
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(FILES[split], (images, labels)):
        data = idx_bytes(array)
        monkeypatch.setitem(mnist.SHA256["mnist"], name, hashlib.sha256(data).hexdigest())
        (folder / (name + ".gz" if compress else name)).write_bytes(gzip.compress(data) if compress else data)
    return images, labels


# ---- the IDX format -------------------------------------------------------------------------------------------------


def test_read_idx_parses_raw_bytes_and_a_gzip_file(tmp_path):
    images, _ = fake_split()
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(images)))
    assert np.array_equal(read_idx(idx_bytes(images)), images)
    assert np.array_equal(read_idx(tmp_path / "x.gz"), images)


def test_read_idx_returns_a_writable_array_in_native_byte_order():
    a = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    out = read_idx(idx_bytes(a, 0x0C, ">i4"))
    assert np.array_equal(out, a) and out.dtype.isnative and out.flags.writeable


@pytest.mark.parametrize("code,dtype", [(0x09, ">i1"), (0x0B, ">i2"), (0x0D, ">f4"), (0x0E, ">f8")])
def test_read_idx_handles_every_idx_type_code(code, dtype):
    a = np.array([[-1.5, 2.0], [3.0, -4.0]]) if "f" in dtype else np.array([[-1, 2], [3, -4]])
    assert np.array_equal(read_idx(idx_bytes(a, code, dtype)), a)


def test_bad_magic_is_reported():
    with pytest.raises(IDXFormatError, match="bad magic"):
        read_idx(b"<html>404 Not Found</html>")


def test_labels_where_images_are_expected_is_reported():
    _, labels = fake_split()
    with pytest.raises(IDXFormatError, match="0x00000803"):
        read_idx(idx_bytes(labels), expected_magic=IMAGE_MAGIC)


def test_truncated_data_is_reported_with_the_byte_counts():
    images, _ = fake_split()
    with pytest.raises(IDXFormatError, match="truncated.*9392"):  # 12 * 784 = 9408 expected, 16 missing
        read_idx(idx_bytes(images)[:-16])


def test_truncated_gzip_stream_is_reported(tmp_path):
    images, _ = fake_split()
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(images))[:-40])
    with pytest.raises(IDXFormatError):
        read_idx(tmp_path / "x.gz")


def test_extra_bytes_after_the_data_are_reported():
    _, labels = fake_split()
    with pytest.raises(IDXFormatError, match="3 unexpected byte"):
        read_idx(idx_bytes(labels) + b"abc", expected_magic=LABEL_MAGIC)


# ---- loading a folder -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_reads_gzip_or_raw_files(tmp_path, monkeypatch, compress):
    images, labels = write_fake_mnist(tmp_path, monkeypatch, compress=compress)
    got_images, got_labels = load_mnist(tmp_path, download=False)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8


def test_digest_mismatch_is_a_checksum_error_naming_both_digests(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path, monkeypatch)
    monkeypatch.setitem(mnist.SHA256["mnist"], "train-images-idx3-ubyte", "0" * 64)
    with pytest.raises(ChecksumError, match="expected 0000"):
        load_mnist(tmp_path, download=False)


def test_image_and_label_counts_must_agree(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path, monkeypatch)
    labels = idx_bytes(np.zeros(5, np.uint8))
    monkeypatch.setitem(mnist.SHA256["mnist"], "train-labels-idx1-ubyte", hashlib.sha256(labels).hexdigest())
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(IDXFormatError, match="12 images but 5 labels"):
        load_mnist(tmp_path, download=False)


def test_fashion_mnist_without_digest_checks_the_item_count(tmp_path):
    images, labels = fake_split()
    for name, array in zip(FILES["test"], (images, labels)):
        (tmp_path / name).write_bytes(idx_bytes(array))
    with pytest.raises(IDXFormatError, match="expected 10000"):
        load_mnist(tmp_path, split="test", kind="fashion-mnist", download=False)


def test_float_images_are_n_1_28_28_in_unit_interval(tmp_path, monkeypatch):
    images, _ = write_fake_mnist(tmp_path, monkeypatch)
    x, _ = load_mnist_float(tmp_path, download=False)
    assert x.shape == (12, 1, 28, 28) and x.dtype == np.float32
    assert np.allclose(x[:, 0] * 255, images) and x.min() >= 0 and x.max() <= 1
    assert to_float_images(images, np.float64).dtype == np.float64


def test_unknown_split_and_kind_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="train, test"):
        load_mnist(tmp_path, split="validation", download=False)
    with pytest.raises(DatasetError, match="fashion-mnist"):
        load_mnist(tmp_path, kind="cifar", download=False)


def test_folder_comes_from_root_then_tinydiff_data_then_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("TINYDIFF_DATA", raising=False)
    assert mnist_dir() == Path("data/mnist")
    monkeypatch.setenv("TINYDIFF_DATA", str(tmp_path))
    assert mnist_dir(kind="fashion-mnist") == tmp_path / "fashion-mnist"
    assert mnist_dir(root="elsewhere") == Path("elsewhere")


# ---- missing files and the (simulated) download -------------------------------------------------------------------


def offline(url, dest):
    raise URLError("no network (simulated)")


def test_missing_files_offline_say_where_to_put_them_and_their_names(tmp_path):
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(tmp_path, downloader=offline)
    message = str(info.value)
    assert str(tmp_path.resolve()) in message and "TINYDIFF_DATA" in message
    for name in FILES["train"] + FILES["test"]:
        assert name + ".gz" in message
    assert "no network" in message and "ossci-datasets" in message  # each mirror's failure is listed
    assert isinstance(info.value, TinydiffError) and isinstance(info.value, FileNotFoundError)
    assert os.listdir(tmp_path) == []  # no partial files left behind


def test_missing_files_with_download_false_raise_without_downloading(tmp_path):
    def must_not_run(url, dest):
        raise AssertionError("download=False must not download")

    with pytest.raises(MNISTNotFoundError, match="download=False"):
        load_mnist(tmp_path, download=False, downloader=must_not_run)


def fake_server(monkeypatch, corrupt_first_mirror=False):
    """A downloader serving the fake split; records the URLs asked for."""
    images, labels = fake_split()
    served = {}
    for name, array in zip(FILES["train"], (images, labels)):
        data = idx_bytes(array)
        monkeypatch.setitem(mnist.SHA256["mnist"], name, hashlib.sha256(data).hexdigest())
        served[name + ".gz"] = gzip.compress(data)
    asked = []

    def downloader(url, dest):
        asked.append(url)
        body = served[url.rsplit("/", 1)[-1]]
        if corrupt_first_mirror and url.startswith(mnist.MIRRORS["mnist"][0]):
            body = gzip.compress(b"\x00\x00\x08\x01" + (12).to_bytes(4, "big") + bytes(12))  # wrong content
        Path(dest).write_bytes(body)

    return downloader, asked, (images, labels)


def test_successful_download_stores_the_verified_files_and_nothing_else(tmp_path, monkeypatch):
    downloader, asked, (images, labels) = fake_server(monkeypatch)
    target = tmp_path / "new" / "mnist"
    got_images, got_labels = load_mnist(target, downloader=downloader)
    assert np.array_equal(got_images, images) and np.array_equal(got_labels, labels)
    assert sorted(os.listdir(target)) == sorted(n + ".gz" for n in FILES["train"])
    assert len(asked) == 2
    again = load_mnist(target, downloader=offline)  # second call reads the stored files
    assert np.array_equal(again[0], images)


def test_download_writes_to_a_temporary_file_then_replaces(tmp_path, monkeypatch):
    downloader, _, _ = fake_server(monkeypatch)
    destinations = []

    def recording(url, dest):
        destinations.append(Path(dest))
        downloader(url, dest)

    load_mnist(tmp_path, downloader=recording)
    assert all(d.parent == tmp_path and d.name.endswith(".part") for d in destinations)
    assert not any(d.exists() for d in destinations)


def test_corrupt_download_is_discarded_and_the_next_mirror_is_tried(tmp_path, monkeypatch):
    downloader, asked, (images, _) = fake_server(monkeypatch, corrupt_first_mirror=True)
    got_images, _ = load_mnist(tmp_path, downloader=downloader)
    assert np.array_equal(got_images, images)
    assert any(u.startswith(mnist.MIRRORS["mnist"][1]) for u in asked)


def test_download_that_fails_verification_everywhere_is_an_error_listing_the_reason(tmp_path, monkeypatch):
    downloader, _, _ = fake_server(monkeypatch)
    monkeypatch.setitem(mnist.SHA256["mnist"], "train-images-idx3-ubyte", "f" * 64)
    with pytest.raises(MNISTNotFoundError, match="ChecksumError"):
        load_mnist(tmp_path, downloader=downloader)
    assert os.listdir(tmp_path) == []


# ---- the real files (when TINYDIFF_DATA points at them) -----------------------------------------------------------


def real_mnist_folder():
    return mnist_dir()   # the tests using it are marked `mnist`: skipped when the files are not there


@pytest.mark.mnist
@pytest.mark.parametrize("split,count", [("train", 60_000), ("test", 10_000)])
def test_real_mnist_has_the_original_shapes_and_a_sane_label_histogram(split, count):
    images, labels = load_mnist(real_mnist_folder(), split=split, download=False)  # digests verified inside
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    histogram = np.bincount(labels, minlength=10) / count
    assert histogram.min() > 0.08 and histogram.max() < 0.12  # each digit is 9-11% of MNIST
    assert 0.12 < images.mean() / 255 < 0.14  # the known mean intensity, 0.1307 (train) / 0.1325 (test)


@pytest.mark.mnist
def test_real_mnist_files_match_the_published_digests():
    folder = real_mnist_folder()
    for name in FILES["train"] + FILES["test"]:
        path = folder / f"{name}.gz" if (folder / f"{name}.gz").is_file() else folder / name
        data = path.read_bytes()
        data = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        assert hashlib.sha256(data).hexdigest() == mnist.SHA256["mnist"][name]


def test_download_url_streams_a_url_to_a_file(tmp_path):
    source = tmp_path / "source.gz"
    source.write_bytes(gzip.compress(idx_bytes(fake_split()[1])))
    mnist.download_url(source.resolve().as_uri(), tmp_path / "copy.gz")  # a file:// URL: the real code, no network
    assert (tmp_path / "copy.gz").read_bytes() == source.read_bytes()
