"""CPU baselines of ``ffcl-hw bench``: the same integer inference on CPUs, checked bit-exact.

- :func:`generate_c` (csource): plain C of an :class:`~golden.intmodel.IntModel`.
- :func:`measure_host_c` (host): compiled with the system GCC, timed on the host.
- :func:`measure_rv32im` (rv32im): compiled for RV32IM, instructions counted in Unicorn.
- :func:`measure_numpy` (numpy_ref): the NumPy golden model's own time.
- :func:`measure_training_rv32im`, :func:`measure_training_host` (training): one sample of
  the integer learning rule (golden/inttrain.c) on RV32IM and on the host, checked
  against ``IntTrainer`` word for word.

Every measurement first checks its results against the golden model (label, per-label
scores and per-layer goodness against ``IntModel.run``; the trained weights and generator
states against ``IntTrainer``; :class:`GoldenMismatch` otherwise), and its result says
how it was obtained. :class:`CrossCompilerMissing` says how to install the RV32IM compiler.
"""

from ffcl_hw.cpu.check import GoldenMismatch
from ffcl_hw.cpu.clock import CpuClock, nominal_clock
from ffcl_hw.cpu.csource import generate_c
from ffcl_hw.cpu.host import measure_host_c
from ffcl_hw.cpu.numpy_ref import measure_numpy
from ffcl_hw.cpu.rv32im import measure_rv32im
from ffcl_hw.cpu.toolchain import CompileError, CompilerMissing, CrossCompilerMissing
from ffcl_hw.cpu.training import measure_training_host, measure_training_rv32im

__all__ = [
    "CompileError",
    "CompilerMissing",
    "CpuClock",
    "CrossCompilerMissing",
    "GoldenMismatch",
    "generate_c",
    "measure_host_c",
    "measure_numpy",
    "measure_rv32im",
    "measure_training_host",
    "measure_training_rv32im",
    "nominal_clock",
]
