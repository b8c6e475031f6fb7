"""The compiled fast path of the training rule equals the NumPy reference bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from golden import inttrain_fast
from golden.inttrain import IntTrainer, TrainRule, train_int
from tests.golden.test_inttrain import RULES, TRAIN_VARIANTS, D, K, X, _random_model

pytestmark = pytest.mark.skipif(not inttrain_fast.available(), reason="no C compiler")


def _state(trainer: IntTrainer) -> list:
    arrays = [a.tolist() for st in trainer.stored for a in st.values()]
    forward = [a.tolist() for lay in trainer.model.layers
               for a in (lay.W, lay.b, lay.U, lay.V) if a is not None]
    return [arrays, forward, trainer.rounding_lfsr.state, trainer.label_lfsr.state]


@pytest.mark.parametrize("rule_name", sorted(RULES))
@pytest.mark.parametrize("name", sorted(TRAIN_VARIANTS))
def test_fast_path_equals_the_reference(name: str, rule_name: str) -> None:
    model = _random_model(name, seed=11)
    rule = TrainRule(epochs=1, seed=9, **{"lr_shift": 4, **RULES[rule_name]})
    slow, fast = IntTrainer(model, rule), IntTrainer(model, rule)
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, X + 1, (12, D)), rng.integers(0, K, 12)
    order = rng.permutation(12)
    losses = np.zeros(model.config.num_layers)
    for n in order:
        losses += slow.train_sample(x[n], int(y[n]), rule.lr_shift).layer_loss
    fast_losses = inttrain_fast.train_samples(fast, x, y, order, rule.lr_shift)
    assert _state(fast) == _state(slow)
    np.testing.assert_allclose(fast_losses, losses, rtol=1e-12)
    assert _state(fast) != _state(IntTrainer(model, rule))


def test_train_int_paths_agree_on_digits_sized_data() -> None:
    model = _random_model("ffcl-adjacent-T2", seed=5, big=True)
    rng = np.random.default_rng(8)
    x, y = rng.integers(0, X + 1, (40, D)), rng.integers(0, K, 40)
    rule = TrainRule(epochs=2, lr_shift=3, lr_steps=(1,), seed=4)
    a = train_int(model, rule, x, y, fast=False)
    b = train_int(model, rule, x, y, fast=True)
    assert _state(a.trainer) == _state(b.trainer)
    assert [h.lr_shift for h in b.history] == [3, 4]
