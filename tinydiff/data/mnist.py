"""MNIST and Fashion-MNIST from the four original IDX files: find them, download them if asked, verify, parse.

    images, labels = load_mnist(split="train")     # (60000, 28, 28) uint8, (60000,) uint8
    x, y = load_mnist_float(split="test")         # (10000, 1, 28, 28) float32 in [0, 1], (10000,) uint8

Where the files are looked for (the first rule that applies):

1. ``root``, if given: the folder that holds the four files;
2. ``$TINYDIFF_DATA/mnist`` (``$TINYDIFF_DATA/fashion-mnist`` for ``kind="fashion-mnist"``) if TINYDIFF_DATA is set;
3. ``data/mnist`` (``data/fashion-mnist``) relative to the CURRENT WORKING DIRECTORY, i.e. the repository's own,
   git-ignored ``data/`` folder when you run from the repository root.

Each file may be gzip-compressed (``train-images-idx3-ubyte.gz``, as the mirrors serve it) or raw
(``train-images-idx3-ubyte``). Missing files are downloaded from ``MIRRORS`` into that folder (written to a temporary
file, verified, then moved into place with ``os.replace``, so a half-finished download never looks like a file).
``TINYDIFF_OFFLINE=1`` makes every download fail at once, as on a machine without network (CI uses it to prove that
the test suite passes there). ``mnist_on_disk()`` tells, without reading or downloading anything, whether the files
are there; ``require_mnist(what)`` is the chapters' front door: it downloads what is missing, or exits with one line.

Verification. MNIST: the SHA-256 of the DECOMPRESSED bytes must equal ``SHA256`` below (the digests of the original
distribution, so they hold for any gzip copy). Fashion-MNIST: no digest of the decompressed files could be checked
while writing this module, so only the format is verified (magic numbers, 28 x 28 images, 60000 / 10000 items,
labels in 0..9, exact byte count).

Speed: reading the 60,000 training images (gunzip + SHA-256 + parse, straight into the array) takes about 0.2 s on the
development machine, so nothing is cached on disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO, Callable
from urllib.request import urlopen

import numpy as np

from tinydiff.errors import ChecksumError, DatasetError, IDXFormatError, MNISTNotFoundError  # noqa: F401  (re-exported)

IMAGE_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (N, rows, cols)
LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (N,)

# IDX type code (third byte of the magic number) -> big-endian NumPy dtype
GZIP_MAGIC = b"\x1f\x8b"
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

FILES = {  # split -> (images file, labels file), names without ".gz"
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
COUNTS = {"train": 60_000, "test": 10_000}

# SHA-256 of the decompressed original files (47040016, 60008, 7840016 and 10008 bytes).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {},  # unverified: format checks only (see the module docstring)
}

MIRRORS = {  # tried in order; each serves "<name>.gz"
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ],
    "fashion-mnist": [
        "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ],
}
KINDS = tuple(MIRRORS)


# ---------------------------------------------------------------------------------------------------------------
# The IDX format


def _open_stream(source) -> BinaryIO:
    """A binary stream over the DECOMPRESSED bytes of a path or a bytes object (gzip detected by its magic 1f 8b)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        raw = io.BytesIO(bytes(source))
        return gzip.GzipFile(fileobj=raw, mode="rb") if raw.getvalue()[:2] == GZIP_MAGIC else raw
    with open(source, "rb") as f:
        is_gzip = f.read(2) == GZIP_MAGIC
    return gzip.open(source, "rb") if is_gzip else open(source, "rb")


def _read_exactly(stream: BinaryIO, buffer: memoryview) -> int:
    """Fill ``buffer`` from ``stream``; returns how many bytes arrived (fewer means the stream ended early)."""
    got = 0
    while got < len(buffer):
        k = stream.readinto(buffer[got:])
        if not k:
            break
        got += k
    return got


def _bytes_left(stream: BinaryIO) -> int | None:
    """Bytes between the position and the end of a raw file or bytes stream; None for a gzip stream (unknown)."""
    if isinstance(stream, gzip.GzipFile):
        return None
    if isinstance(stream, io.BytesIO):
        return len(stream.getbuffer()) - stream.tell()
    return os.fstat(stream.fileno()).st_size - stream.tell()


def _read_at_most(stream: BinaryIO, n: int, chunk: int = 1 << 24) -> bytearray:
    """Up to n bytes, read in chunks (so that memory grows only with what actually arrives)."""
    buffer = bytearray()
    while len(buffer) < n:
        part = stream.read(min(chunk, n - len(buffer)))
        if not part:
            break
        buffer += part
    return buffer


def read_idx_and_digest(source, expected_magic: int | None = None) -> tuple[np.ndarray, str]:
    """Parse an IDX file (path or bytes, gzip or raw). Returns (array in native byte order, SHA-256 hex digest).

    IDX layout (LeCun et al.): magic = 0x00 0x00 <type code> <ndim>, then ndim big-endian int32 sizes, then the
    data, big-endian, row-major. The digest is of the decompressed bytes (header + data).
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else str(source)
    try:
        with _open_stream(source) as f:
            head = f.read(4)
            if len(head) < 4:
                raise IDXFormatError(f"{name}: only {len(head)} byte(s); too short to be an IDX file")
            if head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES or head[3] == 0:
                raise IDXFormatError(
                    f"{name}: bad magic number 0x{head.hex()} (an IDX file starts 0x0000 <type> <ndim>, e.g. "
                    "0x00000803 for images, 0x00000801 for labels). Is it an HTML error page or a different file?"
                )
            magic = int.from_bytes(head, "big")
            if expected_magic is not None and magic != expected_magic:
                raise IDXFormatError(
                    f"{name}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x} "
                    f"({'images' if expected_magic == IMAGE_MAGIC else 'labels'}). Are the images and labels swapped?"
                )
            ndim = head[3]
            dims_bytes = f.read(4 * ndim)
            if len(dims_bytes) < 4 * ndim:
                raise IDXFormatError(f"{name}: truncated header (needs {ndim} dimension sizes)")
            shape = tuple(int.from_bytes(dims_bytes[4 * i : 4 * i + 4], "big") for i in range(ndim))
            dtype = np.dtype(IDX_DTYPES[head[2]])
            nbytes = math.prod(shape) * dtype.itemsize       # Python ints: a lying header cannot overflow this
            left = _bytes_left(f)
            if left is not None and nbytes > left:           # checked before allocating (0x7fffffff images: 1.7 TB)
                raise IDXFormatError(
                    f"{name}: truncated or corrupt: the header announces shape {shape} ({nbytes} data bytes) but the "
                    f"file holds only {left} after the header. Delete it and download it again."
                )
            if left is None:                                 # gzip: the size is unknown until read, so read in parts
                buffer = _read_at_most(f, nbytes)
                data, got = np.frombuffer(buffer, dtype=dtype), len(buffer)
            else:
                data = np.empty(nbytes // dtype.itemsize, dtype=dtype)
                got = _read_exactly(f, memoryview(data).cast("B"))
            if got < nbytes:
                raise IDXFormatError(
                    f"{name}: truncated: the header announces shape {shape} ({nbytes} data bytes) but only "
                    f"{got} arrived. The file is incomplete: delete it and download it again."
                )
            extra = len(f.read())
            if extra:
                raise IDXFormatError(f"{name}: {extra} unexpected byte(s) after the data of shape {shape}")
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise IDXFormatError(f"{name}: corrupt gzip stream ({err}); delete the file and download it again") from err
    digest = hashlib.sha256(head + dims_bytes)
    digest.update(data)
    return data.reshape(shape).astype(data.dtype.newbyteorder("="), copy=False), digest.hexdigest()


def read_idx(source, expected_magic: int | None = None) -> np.ndarray:
    """Parse an IDX file (a path or bytes, gzip-compressed or raw) into an array of the shape its header gives."""
    return read_idx_and_digest(source, expected_magic)[0]


# ---------------------------------------------------------------------------------------------------------------
# Finding, downloading and verifying the files


def _check_kind(kind: str) -> str:
    key = str(kind).lower().replace("_", "-")
    if key in ("fashion", "fashionmnist"):
        key = "fashion-mnist"
    if key not in KINDS:
        raise DatasetError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return key


def mnist_dir(root=None, kind: str = "mnist") -> Path:
    """The folder the files are read from: ``root``, else $TINYDIFF_DATA/<kind>, else ./data/<kind> (see above)."""
    kind = _check_kind(kind)
    if root is not None:
        return Path(root)
    if os.environ.get("TINYDIFF_DATA"):
        return Path(os.environ["TINYDIFF_DATA"]) / kind
    return Path("data") / kind


def _where_to_put_them(directory: Path, kind: str) -> str:
    names = "  ".join(f"{n}.gz" for pair in FILES.values() for n in pair)
    return (
        f"Put the four {kind} files in {directory.resolve()}:\n    {names}\n"
        "(gzip-compressed as above, or decompressed without the .gz). Or tell tinydiff where they are: "
        f"load_mnist(root=FOLDER), or set TINYDIFF_DATA=PARENT so that the files are in PARENT/{kind}/."
    )


def offline() -> bool:
    """True when ``TINYDIFF_OFFLINE`` is set to anything but "" or "0": downloads then fail as if there were no network."""
    return os.environ.get("TINYDIFF_OFFLINE", "0") not in ("", "0")


def download_url(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Stream ``url`` into the file ``dest`` with a tqdm progress bar. Raises URLError/OSError when offline."""
    from tqdm.auto import tqdm

    if offline() and not url.startswith("file:"):
        raise ConnectionError("TINYDIFF_OFFLINE is set: no downloads")

    with urlopen(url, timeout=timeout) as response, open(dest, "wb") as f:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1], leave=False) as bar:
            while chunk := response.read(1 << 16):
                f.write(chunk)
                bar.update(len(chunk))


def _read_verified(source, name: str, kind: str) -> np.ndarray:
    """Parse one of the four files and check it is the original (digest) or at least well formed (shape, count)."""
    is_images = "images" in name
    array, digest = read_idx_and_digest(source, IMAGE_MAGIC if is_images else LABEL_MAGIC)
    expected = SHA256[kind].get(name)
    if expected is not None and digest != expected:
        raise ChecksumError(
            f"{source}: SHA-256 of the decompressed bytes is {digest}, expected {expected} (the original {name}). "
            "The file is corrupt or not the original; delete it and run again to download it."
        )
    if is_images and array.shape[1:] != (28, 28):
        raise IDXFormatError(f"{source}: images of shape {array.shape[1:]}, expected (28, 28)")
    if expected is None:  # no digest known: at least the item count of the original
        split = "train" if name.startswith("train") else "test"
        if len(array) != COUNTS[split]:
            raise IDXFormatError(f"{source}: {len(array)} items, expected {COUNTS[split]} for the {split} split")
    return array


def _download(directory: Path, name: str, kind: str, downloader: Callable) -> np.ndarray:
    """Try each mirror: download to a temporary file, verify, then os.replace it to <name>.gz. Returns the array."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MNISTNotFoundError(
            f"{name} is missing and {directory} cannot be created to download it ({err}).\n"
            + _where_to_put_them(directory, kind)
        ) from err
    failures = []
    for mirror in MIRRORS[kind]:
        url = mirror + name + ".gz"
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
        except OSError as err:
            raise MNISTNotFoundError(
                f"{name} is missing and {directory} is not writable ({err}).\n" + _where_to_put_them(directory, kind)
            ) from err
        os.close(fd)
        try:
            downloader(url, Path(tmp))
            array = _read_verified(Path(tmp), name, kind)
            os.replace(tmp, directory / f"{name}.gz")
            return array
        except (OSError, DatasetError) as err:  # URLError, HTTPError and timeouts are OSErrors
            failures.append(f"    {url}: {type(err).__name__}: {err}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise MNISTNotFoundError(
        f"{name} is not in {directory.resolve()} and could not be downloaded:\n" + "\n".join(failures) + "\n"
        + _where_to_put_them(directory, kind)
    )


def _load_one(directory: Path, name: str, kind: str, download: bool, downloader: Callable) -> np.ndarray:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return _read_verified(candidate, name, kind)
    if not download:
        raise MNISTNotFoundError(
            f"{name}(.gz) not found in {directory.resolve()} and download=False.\n"
            + _where_to_put_them(directory, kind)
        )
    return _download(directory, name, kind, downloader)


def mnist_on_disk(root=None, kind: str = "mnist") -> bool:
    """True if all four files (gzip or raw) are in ``mnist_dir(root, kind)``. Reads nothing, downloads nothing."""
    directory = mnist_dir(root, kind)
    return all((directory / f"{n}.gz").is_file() or (directory / n).is_file() for pair in FILES.values() for n in pair)


def require_mnist(what: str, root=None, kind: str = "mnist") -> Path:
    """Make sure the four files are on disk (downloading the missing ones), or exit with ONE line saying what to do.

    For scripts (the chapters): ``require_mnist("chapter 11")`` before anything else runs. Returns the folder.
    Raises SystemExit (status 1, the message on stderr) instead of MNISTNotFoundError's traceback.
    """
    directory = mnist_dir(root, kind)
    if mnist_on_disk(root, kind):
        return directory
    try:
        for pair in FILES.values():
            for name in pair:
                if not ((directory / f"{name}.gz").is_file() or (directory / name).is_file()):
                    _download(directory, name, kind, download_url)
    except MNISTNotFoundError as err:
        lines = str(err).splitlines()
        first_failure = lines[1].strip() if len(lines) > 1 and lines[1].startswith("    ") else lines[0]
        cause = "TINYDIFF_OFFLINE is set" if offline() else f"the download failed: {first_failure}"
        raise SystemExit(
            f"{what} needs the {'MNIST' if kind == 'mnist' else kind} files, which are not in {directory.resolve()} ({cause}). Put the four .gz files "
            f"there, or set TINYDIFF_DATA=PARENT with the files in PARENT/{kind}/ (docs/mnist.md)."
        ) from None
    return directory


# ---------------------------------------------------------------------------------------------------------------
# The front door


def load_mnist(root=None, split: str = "train", kind: str = "mnist", download: bool = True, downloader=None):
    """Load one split of MNIST or Fashion-MNIST. Returns (images (N, 28, 28) uint8, labels (N,) uint8).

    root:       folder holding the files (default: $TINYDIFF_DATA/<kind>, else ./data/<kind>; see the module doc)
    split:      "train" (60,000) or "test" (10,000)
    kind:       "mnist" or "fashion-mnist"
    download:   fetch missing files from MIRRORS (raises MNISTNotFoundError when offline, with where to put them)
    downloader: ``f(url, dest_path)`` writing the file at url to dest_path; default ``download_url`` (tests swap it)
    """
    kind = _check_kind(kind)
    if split not in FILES:
        raise DatasetError(f"unknown split {split!r}; expected one of {', '.join(FILES)}")
    directory = mnist_dir(root, kind)
    downloader = download_url if downloader is None else downloader
    images_name, labels_name = FILES[split]
    images = _load_one(directory, images_name, kind, download, downloader)
    labels = _load_one(directory, labels_name, kind, download, downloader)
    if len(images) != len(labels):
        raise IDXFormatError(f"{directory}: {len(images)} images but {len(labels)} labels in the {split} split")
    if labels.size and labels.max() > 9:
        raise IDXFormatError(f"{directory}: label {labels.max()} found in {labels_name}; labels must be 0..9")
    return images, labels


def to_float_images(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 images (N, 28, 28) -> x = images / 255 as (N, 1, 28, 28) in [0, 1], in ``dtype``."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise DatasetError(f"expected images of shape (N, H, W), got {images.shape}")
    x = images[:, None, :, :].astype(dtype)  # (N, 1, H, W)
    x /= 255
    return x


def load_mnist_float(root=None, split: str = "train", kind: str = "mnist", dtype=np.float32, **kwargs):
    """``load_mnist`` then ``to_float_images``: returns (x (N, 1, 28, 28) in [0, 1], labels (N,) uint8)."""
    images, labels = load_mnist(root, split, kind, **kwargs)
    return to_float_images(images, dtype), labels
