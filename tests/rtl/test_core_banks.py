# amaranth: UnusedElaboratable=no
"""Two banks of model memories: inferences read the bank ``bank`` selects, loads write
the other (what lets the host link keep a model in use while it loads the next)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.intmodel import IntModel
from rtl.core import Core
from tests.golden.variants import reweighted
from tests.rtl.helpers import PERIOD, classify
from tests.rtl.test_core import _random_model


def _golden(model: IntModel, image) -> tuple[int, tuple[int, ...]]:
    result = model.run(np.asarray([image]))
    return int(result.labels[0]), tuple(int(s) for s in result.scores[0])


def test_loads_write_the_bank_not_in_use_and_bank_selects_the_model():
    model_a = _random_model("ffcl-adjacent-T3", 21)
    model_b = reweighted(model_a, 22)
    core = Core(model_a, lanes=3, weights="loadable", banks=2)
    image = np.random.default_rng(3).integers(0, 17, size=9)
    assert _golden(model_a, image) != _golden(model_b, image)
    seen = []
    sim = Simulator(core)
    sim.add_clock(PERIOD)

    async def testbench(ctx) -> None:
        ctx.set(core.result.ready, 1)
        # Bank 0 in use: B goes into bank 1 and must not show.
        for target, addr, word in core.load_words_for(model_b):
            ctx.set(core.load.payload, {"target": target, "addr": addr, "data": word})
            ctx.set(core.load.valid, 1)
            await ctx.tick().until(core.load.ready)
        ctx.set(core.load.valid, 0)
        seen.append(await classify(ctx, core, image))
        ctx.set(core.bank, 1)
        seen.append(await classify(ctx, core, image))
        ctx.set(core.bank, 0)
        seen.append(await classify(ctx, core, image))

    sim.add_testbench(testbench)
    sim.run()
    cycles = core.cycles_per_inference()
    assert seen == [(*_golden(model_a, image), cycles), (*_golden(model_b, image), cycles),
                    (*_golden(model_a, image), cycles)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"banks": 3}, "^Weight banks must be 1 or 2, not 3$"),
    ({"banks": True}, "^Weight banks must be 1 or 2, not True$"),
    ({"banks": 2}, "^Two weight banks need weights='loadable' \\(loads write the second "
                   "bank\\), not 'rom'$"),
])
def test_banks_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Core(_random_model("ffdl", 1), lanes=2, **kwargs)
