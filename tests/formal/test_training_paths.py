# amaranth: UnusedElaboratable=no
"""Combinational paths of the training core's ports (Yosys: sim.formal.combinational_fanout).

The stream contract forbids a ``valid`` (or its payload) that depends on the same
stream's ``ready``: a host link that offers ``ready`` only when it sees ``valid`` would
then deadlock, and the loop would be a combinational cycle through the link. The read-back
port promises its word :attr:`TrainingCore.read_latency` cycles after the address: a path
from ``read.addr`` to ``read_data`` without a register would give a word early, and the
link's read-back would sample the wrong one. The simulations cannot see either (their
benches hold ``ready`` and sample at fixed instants).
"""

from __future__ import annotations

import pytest

from golden.config import ModelConfig
from golden.inttrain import TrainRule
from rtl.training_core import TrainingCore
from sim.formal import combinational_fanout, module_variant
from tests.rtl.test_training_core import D, K, make_model

#: A block-RAM FFCL core that trains every iteration (the most states of the sequence),
#: and the small-part SPRAM core the iCEBreaker's flows build.
DESIGNS = {
    "ffcl_all_bram": (dict(algo="ffcl", hidden=(5, 4), loops=2, topology="adjacent"),
                      dict(loss_iterations="all"), dict(lanes=3)),
    "ffdl_small_part_spram": (dict(algo="ffdl", hidden=(5, 4)), dict(store_bits=12),
                              dict(lanes=4, weights="spram", bias_label_lanes=1,
                                   forward_multipliers="shared",
                                   signal_multipliers="shared", label_lanes=2,
                                   input_norm="forward")),
}


def _core(name: str, module=None) -> TrainingCore:
    fields, rule_fields, options = DESIGNS[name]
    config = ModelConfig(input_size=D, num_classes=K, theta=0.5, **fields)
    rule = TrainRule(epochs=1, seed=7, lr_shift=4, **rule_fields)
    return (module.TrainingCore if module else TrainingCore)(make_model(config, 3), rule,
                                                             **options)


@pytest.mark.parametrize("name", DESIGNS)
def test_the_training_core_keeps_its_record_valid_and_read_back_off_combinational_paths(
        name, tmp_path):
    core = _core(name)
    assert combinational_fanout(core, source="done__ready",
                                sinks=["done__valid", "done__payload", "busy"],
                                folder=tmp_path) == []
    assert combinational_fanout(core, source="read__addr", sinks=["read_data"],
                                folder=tmp_path) == []


def test_the_path_check_finds_a_record_valid_computed_from_ready(tmp_path):
    # The record offered only once the host is ready: the check must name done__valid.
    broken = module_variant("rtl.training_core", {
        "m.d.comb += [self.done.valid.eq(1), reading.eq(1)]":
        "m.d.comb += [self.done.valid.eq(self.done.ready), reading.eq(1)]"})
    core = _core("ffcl_all_bram", broken)
    assert combinational_fanout(core, source="done__ready", sinks=["done__valid"],
                                folder=tmp_path) == ["done__valid"]
