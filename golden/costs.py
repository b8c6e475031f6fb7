"""Work per inference, counted the way the accelerator does it.

Three kinds of work are counted separately, because they run on different hardware:

- ``macs``: multiply-accumulates of the matrix-vector products (the MAC lanes).
- ``scan_steps``: add-label-weight / ReLU / square-accumulate steps of the goodness
  computation, one per neuron per candidate label per scored layer and iteration (the
  goodness datapath). FFL's goodness of a full pass is N_l such steps per scored layer.
- ``norm_steps``: the length normalisation, which the hardware does as one
  square-accumulate per element of the normalised vector (its squared norm) plus one
  scaling multiply per output neuron of the product that consumes it (W n(a) = (W a)/||a||).

Variants (docs/algorithm.md):

- FFL: K full passes, the label as layer 1's extra input block of K columns, so layer 1
  costs N_1 (D + K) MACs per pass. ``fair=True`` counts the FFL that computes W_1 x once and
  adds the label column per pass: the fairer baseline, also reported.
- FFDL: one label-free pass, sum_l N_l N_{l-1} MACs, then the label scan, K sum_l N_l steps.
- FFCL: W_1 x computed once; iterations 2..T add the feedback products (iteration 1's
  feedback is zero and is skipped) and recompute layers 2..L; the scan runs on every
  iteration that the readout uses. With ``feedback="goodness"`` the forwarded features are
  FFDL's, the feedback products run once, and iteration 2 rescans only the layers whose
  goodness it changes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from golden.config import ModelConfig

__all__ = ["InferenceCost", "inference_cost"]


@dataclass(frozen=True)
class InferenceCost:
    """Work for one inference (one image, every label scored).

    Attributes
    ----------
    macs : int
        Matrix-vector multiply-accumulates.
    scan_steps : int
        Goodness add/ReLU/square-accumulate steps.
    norm_steps : int
        Normalisation square-accumulates and scaling multiplies.
    passes : int
        Forward passes through the network (K for FFL, T iterations for FFCL, else 1).
    """

    macs: int
    scan_steps: int
    norm_steps: int
    passes: int

    @property
    def multiplies(self) -> int:
        """Every multiply of the inference (each kind of step has one)."""
        return self.macs + self.scan_steps + self.norm_steps

    def to_dict(self) -> dict[str, int]:
        """JSON-ready fields plus ``multiplies``."""
        return {**asdict(self), "multiplies": self.multiplies}


def _ffl_cost(config: ModelConfig, fair: bool) -> InferenceCost:
    hidden, K, D = config.hidden, config.num_classes, config.input_size
    deeper = sum(hidden[i] * hidden[i - 1] for i in range(1, len(hidden)))
    if fair:
        macs = hidden[0] * D + K * deeper
    else:
        macs = K * (hidden[0] * (D + K) + deeper)
    scan = K * sum(hidden[i] for i in config.scoring_layers())
    norm = K * sum(hidden[i] + hidden[i + 1] for i in range(len(hidden) - 1))
    return InferenceCost(macs=macs, scan_steps=scan, norm_steps=norm, passes=K)


def inference_cost(config: ModelConfig, *, fair: bool = False) -> InferenceCost:
    """Count the work of one inference of ``config``.

    Parameters
    ----------
    config : ModelConfig
        The network.
    fair : bool
        FFL only: count the variant that computes W_1 x once instead of K times.
    """
    if config.algo == "ffl":
        return _ffl_cost(config, fair)
    hidden, K, D, L = config.hidden, config.num_classes, config.input_size, config.num_layers
    forward = hidden[0] * D + sum(hidden[i] * hidden[i - 1] for i in range(1, L))
    forward_norm = sum(hidden[i] + hidden[i + 1] for i in range(L - 1))
    full_scan = K * sum(hidden)
    if config.algo == "ffdl":
        return InferenceCost(macs=forward, scan_steps=full_scan, norm_steps=forward_norm,
                             passes=1)
    receivers = [(i, config.feedback_source(i)) for i in range(L)]
    receivers = [(i, s) for i, s in receivers if s is not None]
    feedback_macs = sum(hidden[i] * hidden[s] for i, s in receivers)
    # Each feedback vector is normalised (N_src squares) and each receiving product scaled.
    feedback_norm = sum(hidden[s] + hidden[i] for i, s in receivers)
    if config.feedback == "goodness":
        rescan = K * sum(hidden[i] for i, _ in receivers)
        return InferenceCost(
            macs=forward + feedback_macs,
            scan_steps=full_scan + (rescan if config.readout == "sum" else 0),
            norm_steps=forward_norm + feedback_norm,
            passes=2,
        )
    T = config.loops
    upper = forward - hidden[0] * D
    macs = hidden[0] * D + T * upper + (T - 1) * feedback_macs
    scans = T if config.readout == "sum" else 1
    return InferenceCost(
        macs=macs,
        scan_steps=scans * full_scan,
        norm_steps=T * forward_norm + (T - 1) * feedback_norm,
        passes=T,
    )
