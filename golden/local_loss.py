"""Layer-local Forward-Forward losses and their closed-form gradients.

Every layer's parameters move only by the gradient of that layer's own loss, with the
layer's inputs (feature input u, label y, feedback f) held constant. For
z = W u + V f + U y + b, h = ReLU(z), g = sum h^2 and threshold theta:

- positive sample: loss softplus(theta - g), dL/dg = -sigmoid(theta - g)
- negative sample: loss softplus(g - theta), dL/dg = +sigmoid(g - theta)
- dL/dz = dL/dg * 2h (zero where z <= 0)
- dW = dL/dz u^T, dV = dL/dz f^T, dU = dL/dz y^T, db = dL/dz

Losses are averaged over the mini-batch. Nothing flows from one layer to another and
nothing flows back through the loop iterations: this module has no autograd and no
backpropagation, only these closed forms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.config import ModelConfig
from golden.network import LayerStep, trace, trace_ffl
from golden.params import Parameters

__all__ = ["LayerGradients", "local_gradients", "sigmoid", "softplus"]


def softplus(v: np.ndarray) -> np.ndarray:
    """log(1 + exp(v)), without overflow."""
    return np.logaddexp(0, v)


def sigmoid(v: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-v)), without overflow (tanh form)."""
    return 0.5 * (1 + np.tanh(0.5 * v))


@dataclass
class LayerGradients:
    """Gradients of one layer's local loss with respect to its own parameters.

    Attributes
    ----------
    W, b : ndarray
        Gradients of the feature weights and bias.
    U, V : ndarray or None
        Gradients of the label and feedback weights, where the layer has them.
    loss : float
        The layer's loss (mean over the batch, summed over the trained iterations).
    """

    W: np.ndarray
    b: np.ndarray
    U: np.ndarray | None
    V: np.ndarray | None
    loss: float = 0.0


def _dz(step: LayerStep, label_weights: np.ndarray | None, labels: np.ndarray,
        theta: float, positive: bool) -> tuple[np.ndarray, float]:
    """dL/dz (already divided by the batch size) and the mean loss of one sign."""
    z = step.pre if label_weights is None else step.pre + label_weights.T[labels]
    h = np.maximum(z, 0)
    g = np.einsum("ij,ij->i", h, h)
    margin = theta - g if positive else g - theta
    dldg = sigmoid(margin) * (-1 if positive else 1)
    n = z.shape[0]
    return (dldg / n)[:, None] * 2 * h, float(softplus(margin).mean())


def _accumulate(grad: LayerGradients, step: LayerStep,
                terms: list[tuple[np.ndarray, np.ndarray]], num_classes: int) -> None:
    """Add the gradients of ``terms`` = [(dL/dz, labels), ...] that share ``step``'s inputs.

    The terms' dL/dz are summed before the products with the shared inputs u and f, so a
    positive and a negative sample of the same label-free trace cost one product each.
    """
    dz = sum(term for term, _ in terms)
    grad.W += dz.T @ step.u
    grad.b += dz.sum(axis=0)
    if grad.V is not None and step.f is not None:
        grad.V += dz.T @ step.f
    if grad.U is not None:
        for term, labels in terms:
            onehot = np.zeros((labels.shape[0], num_classes), dtype=term.dtype)
            onehot[np.arange(labels.shape[0]), labels] = 1
            grad.U += term.T @ onehot


def local_gradients(
    config: ModelConfig,
    params: Parameters,
    x: np.ndarray,
    y_pos: np.ndarray,
    y_neg: np.ndarray,
    *,
    loss_iterations: str = "all",
    layers: tuple[int, ...] | None = None,
) -> list[LayerGradients | None]:
    """Each layer's local loss and the closed-form gradient of its own parameters.

    Parameters
    ----------
    config, params
        The network.
    x : ndarray, shape (n, D)
        Images; every image is a positive sample with ``y_pos`` and a negative with ``y_neg``.
    y_pos, y_neg : ndarray of int, shape (n,)
        True and wrong labels.
    loss_iterations : {"all", "last"}
        FFCL: sum the local loss over every iteration, or take the last one only.
    layers : tuple of int, optional
        0-based layers to compute (others get ``None``); default every layer.

    Returns
    -------
    list of (LayerGradients or None)
        One entry per layer.
    """
    wanted = set(range(config.num_layers) if layers is None else layers)
    thresholds = config.thresholds()
    grads: list[LayerGradients | None] = []
    for layer in range(config.num_layers):
        if layer not in wanted:
            grads.append(None)
            continue
        grads.append(LayerGradients(
            W=np.zeros_like(params.W[layer]),
            b=np.zeros_like(params.b[layer]),
            U=None if params.U[layer] is None else np.zeros_like(params.U[layer]),
            V=None if params.V[layer] is None else np.zeros_like(params.V[layer]),
        ))
    K = config.num_classes

    if config.algo == "ffl":
        # The label shapes every layer's input, so positive and negative samples have
        # separate traces; each layer still sees them as constants.
        for labels, positive in ((y_pos, True), (y_neg, False)):
            for layer, step in enumerate(trace_ffl(config, params, x, labels)):
                grad = grads[layer]
                if grad is None:
                    continue
                dz, loss = _dz(step, params.U[layer], labels, thresholds[layer], positive)
                _accumulate(grad, step, [(dz, labels)], K)
                grad.loss += loss
        return grads

    # FFDL/FFCL: features are label-free, so one trace serves both signs, and the two
    # signs' dL/dz can be added before the products with the shared inputs.
    steps = trace(config, params, x)
    rows = steps if loss_iterations == "all" else steps[-1:]
    for row in rows:
        for layer, step in enumerate(row):
            grad = grads[layer]
            if grad is None:
                continue
            dz_pos, loss_pos = _dz(step, params.U[layer], y_pos, thresholds[layer], True)
            dz_neg, loss_neg = _dz(step, params.U[layer], y_neg, thresholds[layer], False)
            _accumulate(grad, step, [(dz_pos, y_pos), (dz_neg, y_neg)], K)
            grad.loss += loss_pos + loss_neg
    return grads
