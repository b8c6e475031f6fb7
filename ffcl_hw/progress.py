"""A progress bar over training epochs that shows the running loss."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["EpochBar"]


class EpochBar:
    """Training callback that draws ``label  12/120 epochs  loss=0.0421`` on stderr.

    The bar is created on the first epoch (when the total is known) and closed on the
    last. It is drawn only on a terminal, unless ``quiet``; logs stay clean.
    """

    def __init__(self, label: str, *, quiet: bool = False) -> None:
        self.label = label
        self.quiet = quiet
        self._bar: tqdm | None = None

    def __call__(self, done: int, total: int, loss: float) -> None:
        """Record that ``done`` of ``total`` epochs are finished with mean ``loss``."""
        if self._bar is None:
            # disable=None: tqdm draws only when stderr is a terminal.
            self._bar = tqdm(total=total, desc=self.label, unit="epoch", file=sys.stderr,
                             disable=True if self.quiet else None, dynamic_ncols=True)
        self._bar.update(1)
        self._bar.set_postfix(loss=f"{loss:.4f}")
        if done >= total:
            self._bar.close()
