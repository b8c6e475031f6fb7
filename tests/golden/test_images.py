"""Tests for golden.images: exact area-averaging downsampling."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from golden.images import area_weights, resize_images


def _reference_weights(src: int, dst: int) -> np.ndarray:
    # Independent exact construction with fractions: output i covers [i*src/dst, (i+1)*src/dst).
    scale = Fraction(src, dst)
    rows = []
    for i in range(dst):
        lo, hi = i * scale, (i + 1) * scale
        rows.append([max(Fraction(0), min(hi, j + 1) - max(lo, Fraction(j))) / scale
                     for j in range(src)])
    return np.array([[float(w) for w in row] for row in rows])


SIZE_PAIRS = [(4, 2), (28, 14), (28, 10), (28, 7), (8, 3), (5, 5), (7, 1), (3, 2)]


@pytest.mark.parametrize(("src", "dst"), SIZE_PAIRS)
def test_area_weights_match_exact_fractions(src: int, dst: int) -> None:
    weights = area_weights(src, dst)
    assert weights.shape == (dst, src)
    np.testing.assert_allclose(weights, _reference_weights(src, dst), rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(weights.sum(axis=0), dst / src, rtol=0, atol=1e-12)


def test_area_weights_hand_example() -> None:
    # 3 -> 2: each output covers 1.5 input pixels; the middle one is split in half.
    expected = np.array([[2 / 3, 1 / 3, 0.0], [0.0, 1 / 3, 2 / 3]])
    np.testing.assert_array_equal(area_weights(3, 2), expected)


def test_resize_4x4_to_2x2_is_block_means() -> None:
    image = np.array(
        [[1, 2, 10, 20],
         [3, 4, 30, 40],
         [0, 0, 8, 8],
         [0, 4, 8, 0]],
        dtype=np.float64,
    )
    expected = np.array([[2.5, 25.0], [1.0, 6.0]])
    out = resize_images(image[None], 2)
    assert out.shape == (1, 2, 2)
    np.testing.assert_allclose(out[0], expected, rtol=0, atol=1e-12)


def test_resize_3x3_to_2x2_hand_example() -> None:
    # Each output block covers 1.5 x 1.5 pixels, a quarter of the centre pixel among them,
    # so each output is 9 * (1/4) / 2.25 = 1.
    image = np.zeros((1, 3, 3))
    image[0, 1, 1] = 9.0
    np.testing.assert_allclose(resize_images(image, 2)[0], np.full((2, 2), 1.0), atol=1e-12)


@pytest.mark.parametrize(("src", "dst"), [(28, 10), (28, 13), (8, 3), (7, 4), (28, 14)])
def test_resize_preserves_mass(src: int, dst: int) -> None:
    images = np.random.default_rng(src * 100 + dst).random((5, src, src))
    out = resize_images(images, dst)
    assert out.shape == (5, dst, dst)
    np.testing.assert_allclose(out.sum(axis=(1, 2)) * (src / dst) ** 2,
                               images.sum(axis=(1, 2)), rtol=1e-12)


def test_resize_constant_image_stays_constant() -> None:
    images = np.full((2, 28, 28), 0.75, dtype=np.float32)
    np.testing.assert_allclose(resize_images(images, 10), 0.75, rtol=1e-6)


def test_resize_same_size_is_identity_copy() -> None:
    images = np.random.default_rng(1).random((3, 6, 6))
    out = resize_images(images, 6)
    np.testing.assert_array_equal(out, images)
    assert out is not images


def test_resize_non_square_images() -> None:
    images = np.arange(2 * 4 * 6, dtype=np.float64).reshape(2, 4, 6)
    out = resize_images(images, 2)
    expected = images.reshape(2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(out, expected, atol=1e-12)


@pytest.mark.parametrize(
    ("in_dtype", "dtype", "out_dtype"),
    [
        (np.float32, None, np.float32),
        (np.float64, None, np.float64),
        (np.uint8, None, np.float64),
        (np.uint8, np.float32, np.float32),
    ],
)
def test_resize_dtypes(in_dtype, dtype, out_dtype) -> None:
    images = np.full((2, 4, 4), 8, dtype=in_dtype)
    out = resize_images(images, 2, dtype=dtype)
    assert out.dtype == out_dtype
    np.testing.assert_allclose(out, 8.0)


def test_resize_chunks_agree_with_per_image_products() -> None:
    # More images than one internal chunk, so chunk boundaries are exercised.
    images = np.random.default_rng(2).random((5000, 9, 9))
    out = resize_images(images, 4)
    weights = area_weights(9, 4)
    for index in (0, 2047, 2048, 4095, 4096, 4999):
        np.testing.assert_allclose(out[index], weights @ images[index] @ weights.T, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "size", "error", "pattern"),
    [
        ((1, 28, 28), 29, ValueError, r"Image size must be between 1 and 28, not 29"),
        ((1, 28, 28), 0, ValueError, r"Image size must be between 1 and 28, not 0"),
        ((1, 28, 20), 21, ValueError, r"Image size must be between 1 and 20, not 21"),
        ((1, 8, 8), 2.0, TypeError, r"Image size must be an integer, not 2\.0"),
        ((1, 8, 8), True, TypeError, r"Image size must be an integer, not True"),
        ((8, 8), 2, ValueError, r"images must have shape \(n, H, W\), not \(8, 8\)"),
    ],
)
def test_resize_refuses_bad_arguments(shape, size, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        resize_images(np.zeros(shape), size)


@pytest.mark.parametrize(
    ("src", "dst", "pattern"),
    [
        (4, 5, r"Target size must be between 1 and 4, not 5"),
        (4, 0, r"Target size must be between 1 and 4, not 0"),
        (0, 1, r"Source size must be between 1 and"),
    ],
)
def test_area_weights_bounds(src: int, dst: int, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        area_weights(src, dst)


def test_resize_refuses_integer_output_dtype() -> None:
    with pytest.raises(ValueError, match=r"dtype must be a floating type, not uint8"):
        resize_images(np.zeros((1, 4, 4)), 2, dtype=np.uint8)
