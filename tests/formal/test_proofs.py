# amaranth: UnusedElaboratable=no
"""Formal proofs (SymbiYosys + Boolector) of the stream contracts and the load port.

Each proof either holds for every reachable state (``prove``: k-induction) or for every
input sequence up to a depth (``bmc``), on small configurations; each harness is shown
to catch the bug it is for on a deliberately broken design. The solver's first call
compiles WebAssembly (about a minute on a new machine).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.hdl import Assert
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out

from golden.quantize import quantize
from rtl.core import Core
from rtl.uart import UartRx
from sim.formal import combinational_fanout, memory_write_ports, module_variant, prove
from sim.properties import StreamContract
from tests.golden.variants import make_config, random_params


def _tiny_model(algo: str = "ffdl", hidden=(2,), loops: int = 1):
    extra = {"loops": loops} if algo == "ffcl" else {}
    config = dataclasses.replace(make_config(algo if algo != "ffcl" else "ffcl-adjacent-T3",
                                             input_size=2, num_classes=2),
                                 hidden=hidden, **extra)
    return quantize(config, random_params(config, 1),
                    np.random.default_rng(0).uniform(0, 1, (16, 2)), input_max=16)


def _loads_only_while_idle(m: Module, core: Core, fragment) -> None:
    # The load port takes a write only between inferences: never while the cycle
    # counter runs, never while a result is offered.
    m.d.comb += [Assert(~(core.load.ready & core.busy)),
                 Assert(~(core.load.ready & core.result.valid))]
    # The same on the memories themselves: a write enable of a model memory fires only
    # in a cycle the load port takes a write, while idle, and (two banks) only into the
    # bank inferences do not read (the bank is the address's lowest bit).
    ports = memory_write_ports(fragment, path=("memories",))
    written = {name.split(".")[1] for name in ports}
    assert written == ({"bias_rom", "label_rom", "weight_store"} if core.weights == "spram"
                       else {"op_rom", "bias_rom", "label_rom", "weight_rom"}), written
    for memory_ports in ports.values():
        for port in memory_ports:
            with m.If(port._en.any()):
                m.d.comb += Assert(core.load.valid & core.load.ready & ~core.busy
                                   & ~core.result.valid)
                if core.banks == 2:
                    m.d.comb += Assert(port._addr[0] != core.bank)


@pytest.fixture
def work(tmp_path):
    return tmp_path / "formal"


# -- the core -----------------------------------------------------------------------------

CORES = {
    "ffdl-1layer-p2-loadable": dict(model=dict(), lanes=2, weights="loadable"),
    "ffdl-1layer-p1-two-banks": dict(model=dict(), lanes=1, weights="loadable", banks=2),
    "ffdl-1layer-p3-shared-spram": dict(model=dict(), lanes=3, weights="spram",
                                        shared=True),
}


@pytest.mark.parametrize("name", list(CORES))
def test_the_core_keeps_its_stream_contracts_and_loads_only_while_idle(name, work):
    spec = dict(CORES[name])
    core = Core(_tiny_model(**spec.pop("model")), **spec)
    harness = StreamContract(core, inputs=["image", "load"], outputs=["result"],
                             extra=_loads_only_while_idle)
    result = prove(harness, name=f"core_{name}", depth=16, mode="prove", folder=work)
    assert result.passed, f"{result.status}: see {result.log}"


#: Deeper configurations: two layers, and FFCL (feedback loops). About 20 s each, as the
#: one-layer ones: opt-in only to keep the default run's share of formal time down.
DEEP_CORES = {
    "ffdl-2layer-p2-two-banks": dict(model=dict(hidden=(2, 2)), lanes=2,
                                     weights="loadable", banks=2),
    "ffcl-2layer-T2-p2-loadable": dict(model=dict(algo="ffcl", hidden=(2, 2), loops=2),
                                       lanes=2, weights="loadable"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DEEP_CORES))
def test_deeper_cores_keep_their_contracts_and_load_only_while_idle(name, work):
    spec = dict(DEEP_CORES[name])
    core = Core(_tiny_model(**spec.pop("model")), **spec)
    harness = StreamContract(core, inputs=["image", "load"], outputs=["result"],
                             extra=_loads_only_while_idle)
    result = prove(harness, name=f"core_{name}", depth=16, mode="prove", folder=work)
    assert result.passed, f"{result.status}: see {result.log}"


MEMORY_BUGS = {
    # The write enables ignore whether the core accepts loads (busy or not).
    "write-while-busy": {"fire = load.valid & self.accept": "fire = load.valid"},
    # Loads write the bank inferences read.
    "write-active-bank": {"~bank if bank is not None": "bank if bank is not None"},
}


@pytest.mark.parametrize("bug", [
    "write-while-busy",
    # Opt-in (-m slow): the default proof ..._loads_only_while_idle[ffdl-1layer-p1-two-banks]
    # still fails on a load into the bank inferences read.
    pytest.param("write-active-bank", marks=pytest.mark.slow)])
def test_the_memory_write_harness_catches(bug, work):
    core_module = module_variant("rtl.core")
    core_module.ModelMemory = module_variant("rtl.model_memory",
                                             MEMORY_BUGS[bug]).ModelMemory
    core = core_module.Core(_tiny_model(), lanes=1, weights="loadable", banks=2)
    harness = StreamContract(core, inputs=["image", "load"], outputs=["result"],
                             extra=_loads_only_while_idle)
    result = prove(harness, name=f"core_{bug}", depth=8, folder=work)
    assert result.status == "FAIL", f"{result.status}: see {result.log}"


def test_the_core_result_valid_never_depends_on_ready(work):
    core = Core(_tiny_model(), lanes=2, weights="loadable")
    assert combinational_fanout(core, source="result__ready",
                                sinks=["result__valid", "result__payload"],
                                folder=work) == []


# -- the UART receiver --------------------------------------------------------------------

def test_the_uart_receiver_holds_a_byte_until_taken(work):
    # Depth 100 at 4 cycles per bit: two whole frames and the start of a third, so an
    # overrun (a second byte while the first waits) is inside the bound.
    result = prove(StreamContract(UartRx(divisor=4), outputs=["data"]), name="uart_rx",
                   depth=100, folder=work)
    assert result.passed, f"{result.status}: see {result.log}"
    assert combinational_fanout(UartRx(divisor=4), source="data__ready",
                                sinks=["data__valid"], folder=work) == []


# -- the harnesses can fail ---------------------------------------------------------------

class _Source(wiring.Component):
    """A counter offered as a stream, with one of the bugs the contract forbids."""

    def __init__(self, bug: str) -> None:
        self.bug = bug
        super().__init__({"data": Out(stream.Signature(4))})

    def elaborate(self, platform) -> Module:
        m = Module()
        count = Signal(4)
        tick = Signal()
        m.d.sync += tick.eq(~tick)
        m.d.comb += self.data.payload.eq(count)
        if self.bug == "valid-from-ready":
            m.d.comb += self.data.valid.eq(self.data.ready | tick)
        else:
            m.d.comb += self.data.valid.eq(1)
        if self.bug == "payload-moves":
            m.d.sync += count.eq(count + 1)
        else:
            with m.If(self.data.ready):
                m.d.sync += count.eq(count + 1)
        if self.bug == "drops-valid":
            with m.If(tick):
                m.d.comb += self.data.valid.eq(0)
        return m


@pytest.mark.parametrize("bug", ["drops-valid", "payload-moves"])
def test_the_stream_contract_catches_a_broken_source(bug, work):
    result = prove(StreamContract(_Source(bug), outputs=["data"]), name=f"bad_{bug}",
                   depth=6, folder=work)
    assert result.status == "FAIL", f"{result.status}: see {result.log}"


def test_a_correct_source_passes_the_same_harness(work):
    result = prove(StreamContract(_Source("none"), outputs=["data"]), name="good",
                   depth=6, mode="prove", folder=work)
    assert result.passed, f"{result.status}: see {result.log}"


def test_the_fanout_check_finds_valid_computed_from_ready(work):
    assert combinational_fanout(_Source("valid-from-ready"), source="data__ready",
                                sinks=["data__valid"], folder=work) == ["data__valid"]
    assert combinational_fanout(_Source("none"), source="data__ready",
                                sinks=["data__valid"], folder=work) == []


def test_bad_parameters_are_refused(work):
    with pytest.raises(ValueError, match="Mode must be 'bmc' or 'prove', not 'sat'"):
        prove(_Source("none"), name="x", depth=2, folder=work, mode="sat")
    with pytest.raises(ValueError, match="Depth must be a positive integer, not 0"):
        prove(_Source("none"), name="x", depth=0, folder=work)
    with pytest.raises(ValueError, match="_Source has no member 'result'"):
        StreamContract(_Source("none"), outputs=["result"])
