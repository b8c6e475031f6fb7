"""Optimisers and the learning-rate schedule used for training.

Each optimiser updates arrays in place from their gradients. State is kept per array
name, so layer-by-layer training can step some layers and leave others untouched.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Adam", "SGDMomentum", "learning_rate", "make_optimizer"]


def learning_rate(peak: float, epoch: int, epochs: int) -> float:
    """Hinton's schedule: ``peak`` for the first half, then a linear fall.

    Epoch e (0-based) of E in the second half gets ``peak * 2 * (E - e) / E``, so the rate
    is continuous at the midpoint and reaches ``2 * peak / E`` in the last epoch.
    """
    if epoch < epochs / 2:
        return peak
    return peak * 2.0 * (epochs - epoch) / epochs


class Adam:
    """Adam (Kingma and Ba) with bias correction.

    Parameters
    ----------
    beta1, beta2, eps : float
        The usual constants.
    """

    def __init__(self, *, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8) -> None:
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self._m: dict[str, np.ndarray] = {}
        self._v: dict[str, np.ndarray] = {}
        self._t: dict[str, int] = {}

    def step(self, name: str, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        """Update ``param`` in place from ``grad``."""
        m = self._m.setdefault(name, np.zeros_like(param))
        v = self._v.setdefault(name, np.zeros_like(param))
        t = self._t[name] = self._t.get(name, 0) + 1
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        # Bias correction folded into the step size: one scalar instead of two arrays.
        step = lr * np.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        param -= (step * m / (np.sqrt(v) + self.eps)).astype(param.dtype)


class SGDMomentum:
    """Stochastic gradient descent with (heavy-ball) momentum."""

    def __init__(self, *, momentum: float = 0.9) -> None:
        self.momentum = momentum
        self._velocity: dict[str, np.ndarray] = {}

    def step(self, name: str, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        """Update ``param`` in place from ``grad``."""
        velocity = self._velocity.setdefault(name, np.zeros_like(param))
        velocity *= self.momentum
        velocity += grad
        param -= (lr * velocity).astype(param.dtype)


def make_optimizer(name: str) -> Adam | SGDMomentum:
    """The optimiser called ``name`` ("adam" or "sgd")."""
    if name == "adam":
        return Adam()
    if name == "sgd":
        return SGDMomentum()
    raise ValueError(f"optimizer must be one of adam, sgd, not {name!r}")
