"""Float per-sample SGD with the integer rule's schedule: the float twin of the on-chip rule.

The baseline the integer rule (:mod:`golden.inttrain`) is measured against: the same
network, the same float initial weights (:func:`golden.params.init_parameters` from the
first stream of ``SeedSequence(seed).spawn(2)``), the same sample order (the e-th
``permutation(n)`` of ``default_rng(seed)``), batch size 1, plain SGD with the learning rate
2^-lambda(e) of the rule's step schedule, and the closed-form local gradients of
:mod:`golden.local_loss` (FFCL: summed over the trained iterations at fixed weights). Only
the arithmetic differs: float64, exact sigmoid, no rounding, no saturation. Wrong labels
are uniform over the K - 1 others (from ``default_rng(seed + 1)``).
"""

from __future__ import annotations

import time

import numpy as np

from golden.config import ModelConfig
from golden.inttrain import TrainRule
from golden.local_loss import local_gradients
from golden.params import Parameters, init_parameters

__all__ = ["train_float_sgd"]


def train_float_sgd(config: ModelConfig, rule: TrainRule, x: np.ndarray,
                    y: np.ndarray) -> tuple[Parameters, list[float], float]:
    """Train from the seed's float weights; returns (params, loss per epoch, seconds)."""
    start = time.perf_counter()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence(rule.seed).spawn(2)[0])
    params = init_parameters(config, rng, input_sq_norm=float(np.einsum("ij,ij->i", x, x).mean()),
                             dtype=np.float64)
    order_rng = np.random.default_rng(rule.seed)
    label_rng = np.random.default_rng(rule.seed + 1)
    K = config.num_classes
    losses = []
    for epoch in range(rule.epochs):
        lr = 2.0 ** -rule.lr_shift_at(epoch)
        total = 0.0
        for n in order_rng.permutation(x.shape[0]):
            y_neg = (y[n:n + 1] + label_rng.integers(1, K, size=1)) % K
            grads = local_gradients(config, params, x[n:n + 1], y[n:n + 1], y_neg,
                                    loss_iterations=rule.loss_iterations)
            for layer, grad in enumerate(grads):
                total += grad.loss
                for kind in ("W", "b", "U", "V"):
                    g = getattr(grad, kind)
                    if g is not None:
                        params.get(kind, layer)[...] -= lr * g
        losses.append(total / x.shape[0])
    return params, losses, time.perf_counter() - start
