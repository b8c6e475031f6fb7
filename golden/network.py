"""The forward computation of FFL, FFDL and FFCL, and the goodness of every label.

Everything a layer needs for its goodness and for its own local gradient is recorded in
a :class:`LayerStep`: its feature input ``u``, its feedback input ``f``, and its
label-free goodness pre-activation. The goodness of label k is then
``sum(ReLU(pre + U[:, k])**2)``: the single-pass label scan of docs/algorithm.md.

FFDL and FFCL forward label-free features, so one trace serves every label. FFL forwards
the label through layer 1, so it needs one trace per label (K passes at inference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.config import ModelConfig
from golden.params import Parameters

__all__ = [
    "LayerStep",
    "goodness_all_labels",
    "goodness_of_labels",
    "layer_goodness",
    "normalise",
    "predict",
    "trace",
    "trace_ffl",
]

# Label scans of this many samples at a time keep the (n, N, K) temporary small.
_SCAN_CHUNK = 1024


def normalise(v: np.ndarray, eps: float) -> np.ndarray:
    """Length normalisation n(v) = v / (||v||_2 + eps), row by row.

    A zero vector stays zero, which is how FFCL's a^(0) = 0 feeds back nothing.
    """
    norm = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
    return v / (norm + np.asarray(eps, dtype=v.dtype))


@dataclass
class LayerStep:
    """One layer at one iteration: what it received and what it computed.

    Attributes
    ----------
    u : ndarray, shape (n, N_{l-1})
        Feature input: the image for layer 1, n(a_{l-1}) above.
    f : ndarray or None, shape (n, N_src)
        Feedback input n(a_src^(t-1)) (FFCL), ``None`` where the layer has none.
    pre : ndarray, shape (n, N_l)
        Label-free goodness pre-activation: W u + b (+ V f). For FFL's layer 1 the label
        block is added on top by the goodness, like for the other variants.
    label : ndarray or None, shape (n,)
        FFL only: the label this trace was run with (it shaped every later ``u``).
    """

    u: np.ndarray
    f: np.ndarray | None
    pre: np.ndarray
    label: np.ndarray | None = None


def trace(config: ModelConfig, params: Parameters, x: np.ndarray) -> list[list[LayerStep]]:
    """Run the label-free forward pass of FFDL or FFCL.

    Parameters
    ----------
    config : ModelConfig
        An FFDL or FFCL network.
    params : Parameters
        Its weights.
    x : ndarray, shape (n, D)
        Images.

    Returns
    -------
    list of list of LayerStep
        ``steps[t][l]`` for iteration t (0-based; one iteration for FFDL) and layer l.
    """
    if config.algo == "ffl":
        raise ValueError("FFL forwards the label; use trace_ffl(config, params, x, labels)")
    n = x.shape[0]
    # W_1 x + b_1 is the same at every iteration (the image does not change): computed once.
    first = x @ params.W[0].T + params.b[0]
    prev = [np.zeros((n, width), dtype=x.dtype) for width in config.hidden]
    steps: list[list[LayerStep]] = []
    for _ in range(config.loops):
        current: list[np.ndarray] = []
        row: list[LayerStep] = []
        for layer in range(config.num_layers):
            if layer == 0:
                u, s = x, first
            else:
                u = normalise(current[layer - 1], config.eps)
                s = u @ params.W[layer].T + params.b[layer]
            source = config.feedback_source(layer)
            f = None
            pre = s
            if source is not None:
                if config.feedback == "state":
                    f = normalise(prev[source], config.eps)
                    s = s + f @ params.V[layer].T
                    pre = s
                else:
                    # Feedback into goodness: what is forwarded stays feed-forward, so the
                    # source's activation is the same at every iteration; only the
                    # goodness of iteration 2 hears it.
                    f = normalise(prev[source], config.eps)
                    pre = s + f @ params.V[layer].T
            current.append(np.maximum(s, 0))
            row.append(LayerStep(u=u, f=f, pre=pre))
        steps.append(row)
        prev = current
    return steps


def trace_ffl(
    config: ModelConfig, params: Parameters, x: np.ndarray, labels: np.ndarray
) -> list[LayerStep]:
    """Run FFL's forward pass with ``labels`` as layer 1's label block.

    Returns
    -------
    list of LayerStep
        One step per layer. Layer 1's ``pre`` excludes the label term U_1[:, y]; every
        later layer's input already carries it.
    """
    if config.algo != "ffl":
        raise ValueError(f"trace_ffl runs FFL networks, not {config.algo.upper()}")
    steps: list[LayerStep] = []
    u = x
    for layer in range(config.num_layers):
        pre = u @ params.W[layer].T + params.b[layer]
        z = pre + params.U[layer].T[labels] if params.U[layer] is not None else pre
        steps.append(LayerStep(u=u, f=None, pre=pre, label=labels))
        u = normalise(np.maximum(z, 0), config.eps)
    return steps


def layer_goodness(pre: np.ndarray, label_weights: np.ndarray | None,
                   labels: np.ndarray) -> np.ndarray:
    """g = sum_i ReLU(pre_i + U[i, y])^2 for one label per sample.

    Returns
    -------
    ndarray, shape (n,)
    """
    z = pre if label_weights is None else pre + label_weights.T[labels]
    h = np.maximum(z, 0)
    return np.einsum("ij,ij->i", h, h)


def _scan(pre: np.ndarray, label_weights: np.ndarray) -> np.ndarray:
    """The label scan: goodness of every label from one label-free pre-activation.

    Returns
    -------
    ndarray, shape (n, K)
    """
    out = np.empty((pre.shape[0], label_weights.shape[1]), dtype=pre.dtype)
    for start in range(0, pre.shape[0], _SCAN_CHUNK):
        h = np.maximum(pre[start:start + _SCAN_CHUNK, :, None] + label_weights[None], 0)
        out[start:start + _SCAN_CHUNK] = np.einsum("ijk,ijk->ik", h, h)
    return out


def goodness_all_labels(config: ModelConfig, params: Parameters, x: np.ndarray) -> np.ndarray:
    """Per-layer goodness of every candidate label, read out as the variant specifies.

    FFDL and FFCL run one label-free pass and then the label scan; FFCL sums the goodness
    over the iterations (``readout="sum"``) or takes the last. FFL runs one full pass per
    label.

    Returns
    -------
    ndarray, shape (n, L, K)
        Goodness of layer l for label k. A label's score sums the scoring layers.
    """
    n, K = x.shape[0], config.num_classes
    out = np.zeros((n, config.num_layers, K), dtype=x.dtype)
    if config.algo == "ffl":
        for k in range(K):
            labels = np.full(n, k)
            for layer, step in enumerate(trace_ffl(config, params, x, labels)):
                out[:, layer, k] = layer_goodness(step.pre, params.U[layer], labels)
        return out
    steps = trace(config, params, x)
    read = steps if config.readout == "sum" else steps[-1:]
    for row in read:
        for layer, step in enumerate(row):
            out[:, layer] += _scan(step.pre, params.U[layer])
    return out


def goodness_of_labels(config: ModelConfig, params: Parameters, x: np.ndarray,
                       labels: np.ndarray) -> np.ndarray:
    """Per-layer goodness of one given label per sample (read out like the scores).

    Returns
    -------
    ndarray, shape (n, L)
    """
    if config.algo == "ffl":
        steps = trace_ffl(config, params, x, labels)
        return np.stack([layer_goodness(s.pre, params.U[i], labels)
                         for i, s in enumerate(steps)], axis=1)
    steps = trace(config, params, x)
    read = steps if config.readout == "sum" else steps[-1:]
    return sum(
        np.stack([layer_goodness(s.pre, params.U[i], labels) for i, s in enumerate(row)], axis=1)
        for row in read
    )


def predict(config: ModelConfig, params: Parameters, x: np.ndarray,
            layers: tuple[int, ...] | None = None) -> np.ndarray:
    """Predicted labels: argmax over labels of the summed goodness, ties to the lowest.

    Parameters
    ----------
    layers : tuple of int, optional
        0-based layers to score with; default :meth:`ModelConfig.scoring_layers`.
    """
    goodness = goodness_all_labels(config, params, x)
    chosen = config.scoring_layers() if layers is None else layers
    # np.argmax returns the first maximum: ties go to the lowest label, as the hardware does.
    return np.argmax(goodness[:, list(chosen)].sum(axis=1), axis=1)
