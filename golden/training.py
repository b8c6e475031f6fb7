"""Training a Forward-Forward network with layer-local losses.

One mini-batch step: draw a wrong label for every image (never the true one), compute
every layer's local loss and closed-form gradient (:mod:`golden.local_loss`), and let each
layer's optimiser move that layer's own parameters. Every random draw comes from two
generators seeded from the one seed (initial weights; data order and negatives), in a
fixed order, so the same seed gives the same model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from golden.config import ModelConfig, TrainConfig
from golden.local_loss import local_gradients
from golden.network import goodness_all_labels
from golden.optim import learning_rate, make_optimizer
from golden.params import Parameters, init_parameters

__all__ = ["EpochRecord", "TrainResult", "TrainingDiverged", "draw_negatives", "train"]

#: ``callback(epoch_done, epochs_total, mean_loss)`` after every epoch.
ProgressCallback = Callable[[int, int, float], None]


class TrainingDiverged(ArithmeticError):
    """The loss became NaN or infinite: the steps were too large for the arithmetic.

    Attributes
    ----------
    epoch : int
        The 1-based epoch (counted over every stage) in which it happened.
    loss : float
        The non-finite loss.
    lr : float
        That epoch's learning rate.
    """

    def __init__(self, epoch: int, epochs: int, loss: float, lr: float) -> None:
        super().__init__(f"the loss became {loss} in epoch {epoch} of {epochs} (learning "
                         f"rate {lr:g}): training diverged; lower the learning rate or the "
                         "threshold")
        self.epoch, self.epochs, self.loss, self.lr = epoch, epochs, loss, lr


@dataclass
class EpochRecord:
    """What one epoch did: its learning rate and the mean local loss of every layer."""

    epoch: int
    stage: int | None
    lr: float
    layer_loss: list[float]

    @property
    def loss(self) -> float:
        """The layers' mean losses summed."""
        return float(sum(self.layer_loss))


@dataclass
class TrainResult:
    """The trained weights, the per-epoch record and the wall time of training."""

    params: Parameters
    history: list[EpochRecord] = field(default_factory=list)
    seconds: float = 0.0


def draw_negatives(
    config: ModelConfig,
    params: Parameters,
    x: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    kind: str = "random",
) -> np.ndarray:
    """A wrong label for every sample; never the true one.

    ``"random"`` draws uniformly from the K-1 wrong labels (true label plus an offset in
    1..K-1, modulo K). ``"hard"`` takes the wrong label the current model scores highest
    (ties to the lowest).
    """
    K = config.num_classes
    if kind == "random":
        return (labels + rng.integers(1, K, size=labels.shape[0])) % K
    if kind == "hard":
        goodness = goodness_all_labels(config, params, x)
        scores = goodness[:, list(config.scoring_layers())].sum(axis=1)
        scores[np.arange(labels.shape[0]), labels] = -np.inf
        return np.argmax(scores, axis=1)
    raise ValueError(f"negatives must be one of random, hard, not {kind!r}")


def train(
    config: ModelConfig,
    train_config: TrainConfig,
    x: np.ndarray,
    y: np.ndarray,
    *,
    dtype: np.dtype | type = np.float32,
    callback: ProgressCallback | None = None,
) -> TrainResult:
    """Train a network from scratch.

    Parameters
    ----------
    config : ModelConfig
        The network to build.
    train_config : TrainConfig
        Epochs, batch size, learning rate, seed and the training options.
    x : ndarray, shape (n, D)
        Training images, pixels in [0, 1].
    y : ndarray of int, shape (n,)
        Their labels in 0..K-1.
    dtype : numpy dtype
        Arithmetic precision (float32 is fast; tests use float64).
    callback : callable, optional
        Called after every epoch with (epochs done, epochs in all, mean loss).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingDiverged
        As soon as a batch's loss is NaN or infinite (the weights then are too), or if
        the last steps left a weight that is.
    """
    if x.ndim != 2 or x.shape[1] != config.input_size:
        raise ValueError(
            f"training images must have shape (n, {config.input_size}), not {x.shape}"
        )
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), not {y.shape}")
    if y.min() < 0 or y.max() >= config.num_classes:
        raise ValueError(
            f"labels must lie in 0..{config.num_classes - 1}, found {y.min()}..{y.max()}"
        )
    start = time.perf_counter()
    x = np.ascontiguousarray(x, dtype=dtype)
    y = np.asarray(y, dtype=np.int64)
    # Separate streams for the initial weights and for the data order and negatives, so
    # that networks with different numbers of arrays still see the same batches.
    init_seed, data_seed = np.random.SeedSequence(train_config.seed).spawn(2)
    rng = np.random.default_rng(data_seed)
    params = init_parameters(
        config, np.random.default_rng(init_seed),
        input_sq_norm=float(np.einsum("ij,ij->i", x, x).mean()),
        gain=train_config.init_gain, dtype=dtype,
    )
    optimizer = make_optimizer(train_config.optimizer)
    if train_config.schedule == "simultaneous":
        stages: list[tuple[int, ...] | None] = [None]
    else:
        stages = [(layer,) for layer in range(config.num_layers)]
    epochs = train_config.epochs
    total = epochs * len(stages)
    result = TrainResult(params=params)
    done = 0
    for stage in stages:
        for epoch in range(epochs):
            lr = learning_rate(train_config.lr, epoch, epochs)
            layer_loss = np.zeros(config.num_layers)
            batches = 0
            order = rng.permutation(x.shape[0])
            for begin in range(0, x.shape[0], train_config.batch_size):
                index = order[begin:begin + train_config.batch_size]
                xb, yb = x[index], y[index]
                y_neg = draw_negatives(config, params, xb, yb, rng, train_config.negatives)
                grads = local_gradients(
                    config, params, xb, yb, y_neg,
                    loss_iterations=train_config.loss_iterations, layers=stage,
                )
                for layer, grad in enumerate(grads):
                    if grad is None:
                        continue
                    if not math.isfinite(grad.loss):
                        # Every later step would only spread the NaN: stop here.
                        raise TrainingDiverged(done + 1, total, grad.loss, lr)
                    layer_loss[layer] += grad.loss
                    for kind in ("W", "b", "U", "V"):
                        g = getattr(grad, kind)
                        if g is not None:
                            optimizer.step(f"{kind}{layer + 1}", params.get(kind, layer), g, lr)
                batches += 1
            record = EpochRecord(
                epoch=epoch, stage=None if stage is None else stage[0], lr=lr,
                layer_loss=(layer_loss / batches).tolist(),
            )
            result.history.append(record)
            done += 1
            if callback is not None:
                callback(done, total, record.loss)
    if not all(np.isfinite(params.get(kind, layer)).all() for kind, layer in params.names()):
        raise TrainingDiverged(total, total, float("nan"), lr)
    result.seconds = time.perf_counter() - start
    return result
