"""The golden check of a CPU baseline: its results against ``IntModel.run``, bit for bit.

A baseline's time or instruction count is only reported when this check passed on the
same images (CFU Playground's rule).
"""

from __future__ import annotations

import numpy as np

from golden.intmodel import IntModel, IntResult

__all__ = ["GoldenMismatch", "check_against_golden", "check_images"]


class GoldenMismatch(AssertionError):
    """A baseline disagrees with the golden model; the message names the image and field."""


def check_images(model: IntModel, images: np.ndarray) -> np.ndarray:
    """Validate integer images for ``model`` and return them as int64, shape (n, D).

    Raises
    ------
    ValueError
        If the shape is wrong, there are no images, or a pixel lies outside 0..X.
    """
    array = np.asarray(images)
    D, X = model.config.input_size, model.fmt.input_max
    if array.ndim != 2 or array.shape[1] != D:
        raise ValueError(f"images must have shape (n, {D}), not {array.shape}")
    if array.shape[0] == 0:
        raise ValueError("images must hold at least one image, not 0")
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"images must be integer pixels 0..{X}, not dtype {array.dtype}")
    if array.min() < 0 or array.max() > X:
        raise ValueError(f"pixels must lie in 0..{X}, not {array.min()}..{array.max()}")
    return array.astype(np.int64)


def check_against_golden(what: str, golden: IntResult, *, labels: np.ndarray,
                         scores: np.ndarray, goodness: np.ndarray | None = None) -> None:
    """Compare a baseline's labels, per-label scores and per-layer goodness with ``golden``.

    Parameters
    ----------
    what : str
        The baseline, for the message (e.g. ``"host C -O2"``).
    golden : IntResult
        ``IntModel.run`` on the same images.
    labels, scores, goodness : ndarray
        The baseline's results, shapes (n,), (n, K) and (n, L, K) (goodness optional).

    Raises
    ------
    GoldenMismatch
        At the first disagreement, naming the image, the field and both values.
    """
    fields = [("label", golden.labels, labels), ("scores", golden.scores, scores)]
    if goodness is not None:
        fields.append(("goodness", golden.goodness, goodness))
    for name, expected, got in fields:
        got = np.asarray(got)
        if got.shape != expected.shape:
            raise GoldenMismatch(f"{what}: {name} has shape {got.shape}, the golden model's "
                                 f"{expected.shape}")
    n = golden.labels.shape[0]
    for image in range(n):
        for name, expected, got in fields:
            bad = np.flatnonzero(np.asarray(got[image]).ravel() != expected[image].ravel())
            if bad.size:
                index = np.unravel_index(bad[0], expected[image].shape)
                where = "".join(f"[{i}]" for i in index)
                raise GoldenMismatch(
                    f"{what} disagrees with IntModel.run on image {image}: {name}{where} = "
                    f"{np.asarray(got[image])[index]} (CPU) != {expected[image][index]} "
                    "(golden)"
                )
