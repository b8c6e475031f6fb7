"""The weights of a Forward-Forward network and how they start.

Per layer l (1-based in names, 0-based in lists):

- ``W_l`` (N_l x N_{l-1}): feature weights.
- ``b_l`` (N_l): bias.
- ``U_l`` (N_l x K): label weights. Every layer for FFDL and FFCL; layer 1 only for FFL,
  where ``U_1`` is the label block of layer 1's input [x, y].
- ``V_l`` (N_l x N_src): FFCL feedback weights from the source layer of
  :meth:`ModelConfig.feedback_source`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.config import ConfigError, ModelConfig

__all__ = ["Parameters", "init_parameters"]


@dataclass
class Parameters:
    """The arrays of one network, as lists indexed by 0-based layer.

    Attributes
    ----------
    W, b : list of ndarray
        Feature weights and biases of every layer.
    U, V : list of (ndarray or None)
        Label and feedback weights; ``None`` where the layer has none.
    """

    W: list[np.ndarray]
    b: list[np.ndarray]
    U: list[np.ndarray | None]
    V: list[np.ndarray | None]

    def names(self) -> list[tuple[str, int]]:
        """(kind, layer) of every array that exists, in a fixed order."""
        out = []
        for layer in range(len(self.W)):
            for kind in ("W", "b", "U", "V"):
                if getattr(self, kind)[layer] is not None:
                    out.append((kind, layer))
        return out

    def get(self, kind: str, layer: int) -> np.ndarray:
        """The array ``kind`` ("W", "b", "U" or "V") of 0-based ``layer``."""
        array = getattr(self, kind)[layer]
        if array is None:
            raise KeyError(f"layer {layer + 1} has no {kind} weights")
        return array

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``{"W1": ..., "b1": ..., "U1": ...}`` for ``np.savez``."""
        return {f"{kind}{layer + 1}": self.get(kind, layer) for kind, layer in self.names()}

    @classmethod
    def from_arrays(cls, config: ModelConfig, arrays: dict[str, np.ndarray]) -> Parameters:
        """Rebuild parameters for ``config``, checking every name and shape.

        Raises
        ------
        ConfigError
            If an array is missing, unexpected, of the wrong shape for ``config``, not
            floating-point, or holds NaN or infinity.
        """
        expected = expected_shapes(config)
        missing = sorted(set(expected) - set(arrays))
        if missing:
            raise ConfigError(
                f"model weights are missing arrays {', '.join(missing)} "
                f"needed by a {config.algo.upper()} network with hidden {list(config.hidden)}"
            )
        extra = sorted(set(arrays) - set(expected))
        if extra:
            raise ConfigError(
                f"model weights have arrays {', '.join(extra)} that a {config.algo.upper()} "
                f"network with hidden {list(config.hidden)} does not use"
            )
        for name, shape in expected.items():
            if tuple(arrays[name].shape) != shape:
                raise ConfigError(
                    f"weight array {name} has shape {tuple(arrays[name].shape)}, "
                    f"but the configuration needs {shape}"
                )
            if not np.issubdtype(arrays[name].dtype, np.floating):
                raise ConfigError(
                    f"weight array {name} has dtype {arrays[name].dtype}; a float model "
                    "stores floating-point weights (an integer model is read from "
                    "model.int.npz)"
                )
            if not np.all(np.isfinite(arrays[name])):
                raise ConfigError(f"weight array {name} holds NaN or infinite values")
        params = cls(W=[], b=[], U=[], V=[])
        for layer in range(config.num_layers):
            for kind in ("W", "b", "U", "V"):
                name = f"{kind}{layer + 1}"
                getattr(params, kind).append(np.asarray(arrays[name]) if name in arrays else None)
        return params

    def copy(self) -> Parameters:
        """A deep copy."""
        def dup(arrays: list[np.ndarray | None]) -> list[np.ndarray | None]:
            return [None if a is None else a.copy() for a in arrays]

        return Parameters(W=dup(self.W), b=dup(self.b), U=dup(self.U), V=dup(self.V))

    def astype(self, dtype: np.dtype | type) -> Parameters:
        """A copy with every array cast to ``dtype``."""
        def cast(arrays: list[np.ndarray | None]) -> list[np.ndarray | None]:
            return [None if a is None else a.astype(dtype) for a in arrays]

        return Parameters(W=cast(self.W), b=cast(self.b), U=cast(self.U), V=cast(self.V))

    def count(self) -> int:
        """The number of trainable numbers."""
        return sum(self.get(kind, layer).size for kind, layer in self.names())


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every array a network of ``config`` has."""
    shapes: dict[str, tuple[int, ...]] = {}
    for layer, (n_out, n_in) in enumerate(zip(config.hidden, config.fan_in, strict=True)):
        shapes[f"W{layer + 1}"] = (n_out, n_in)
        shapes[f"b{layer + 1}"] = (n_out,)
        if config.has_label_weights(layer):
            shapes[f"U{layer + 1}"] = (n_out, config.num_classes)
        source = config.feedback_source(layer)
        if source is not None:
            shapes[f"V{layer + 1}"] = (n_out, config.hidden[source])
    return shapes


def init_parameters(
    config: ModelConfig,
    rng: np.random.Generator,
    *,
    input_sq_norm: float,
    gain: float = 1.0,
    dtype: np.dtype | type = np.float32,
) -> Parameters:
    """Draw initial weights so that the initial goodness is about the threshold.

    With z_i = w_i . u and w_ij ~ N(0, sigma^2), E[ReLU(z_i)^2] = sigma^2 ||u||^2 / 2, so
    g = sum_i ReLU(z_i)^2 is about N_l sigma^2 ||u||^2 / 2. Setting that to
    ``gain * theta * N_l`` gives sigma^2 = 2 gain theta / ||u||^2. Layer 1 sees the raw
    image (``input_sq_norm`` is the mean squared norm of the training images); later
    layers see unit vectors.

    Label weights U_l are drawn with the variance of the feature term of a unit-norm input
    (sigma^2 = 2 gain theta), so every label starts with a distinct goodness pattern
    (zero label weights trained measurably worse on MNIST in 30 epochs). The initial
    goodness is then about twice the threshold. Biases and feedback weights start at
    zero, so the loop enters only as training finds it useful, and FFCL's first iteration
    is FFDL exactly.

    Layers are drawn in order, W_l before U_l, so networks that share their first layers'
    shapes (FFL and FFDL) share those layers' initial weights.

    Parameters
    ----------
    config : ModelConfig
        The network.
    rng : numpy.random.Generator
        Source of the random draws (the only one used).
    input_sq_norm : float
        Mean of ||x||^2 over the training images.
    gain : float
        Initial goodness as a multiple of the threshold.
    dtype : numpy dtype
        Dtype of every array.
    """
    if not input_sq_norm > 0:
        raise ConfigError(f"input_sq_norm must be positive, not {input_sq_norm!r}")
    params = Parameters(W=[], b=[], U=[], V=[])
    shapes = expected_shapes(config)
    for layer in range(config.num_layers):
        sq_norm = input_sq_norm if layer == 0 else 1.0
        sigma = np.sqrt(2.0 * gain * config.theta / sq_norm)
        name = str(layer + 1)
        params.W.append((rng.standard_normal(shapes["W" + name]) * sigma).astype(dtype))
        params.b.append(np.zeros(shapes["b" + name], dtype=dtype))
        if "U" + name in shapes:
            label_sigma = np.sqrt(2.0 * gain * config.theta)
            params.U.append((rng.standard_normal(shapes["U" + name]) * label_sigma).astype(dtype))
        else:
            params.U.append(None)
        params.V.append(np.zeros(shapes["V" + name], dtype=dtype) if "V" + name in shapes else None)
    return params
