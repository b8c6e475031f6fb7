"""The compiled fast path of the integer training rule (golden/inttrain.c).

:func:`train_samples` runs the same rule as :meth:`golden.inttrain.IntTrainer.train_sample`
over many samples in C, in place on the trainer's arrays and generator states.
tests/golden/test_inttrain_fast.py holds the two equal bit for bit. The C file is
compiled once with the system C compiler (``cc -O3 -march=native``, else ``-O2``) into
the user's cache folder; :func:`available` says whether that worked, and the NumPy
reference is used otherwise.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

__all__ = ["available", "train_samples"]

_SOURCE = Path(__file__).with_name("inttrain.c")
_P64 = ctypes.POINTER(ctypes.c_int64)


class _Net(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int) for name in (
        "L", "T", "K", "D", "goodness_mode", "loss_last", "nearest", "f", "state_bits", "S",
        "Q", "rsq_k", "P1", "lam", "boost")] + [
        (name, ctypes.POINTER(ctypes.c_int)) for name in ("hidden", "src", "w_exp", "v_exp")] + [
        (name, ctypes.POINTER(_P64)) for name in ("Wc", "bc", "Uc", "Vc", "W", "b", "U", "V")] + [
        (name, _P64) for name in ("theta", "sig", "rsq")] + [
        (name, ctypes.c_int64) for name in ("wlo", "whi", "blo", "bhi")]


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ffcl-hw"


@cache
def _library() -> ctypes.CDLL | None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source = _SOURCE.read_bytes()
    # -O3 -march=native ran an MNIST sample 4.7 times faster than -O2 (0.20 against
    # 0.95 ms of CPU), with the same result; plain -O2 is the fallback.
    for flags in (["-O3", "-march=native"], ["-O2"]):
        digest = hashlib.sha256(source + " ".join(flags).encode()).hexdigest()[:16]
        target = _cache_dir() / f"inttrain-{digest}.so"
        if target.exists():
            break
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            out = Path(tmp) / target.name
            result = subprocess.run(
                [compiler, *flags, "-shared", "-fPIC", "-o", str(out), str(_SOURCE), "-lm"],
                capture_output=True, text=True, check=False)
            if result.returncode == 0:
                os.replace(out, target)
                break
    else:
        return None
    lib = ctypes.CDLL(str(target))
    lib.train_samples.restype = ctypes.c_int
    lib.train_samples.argtypes = [ctypes.POINTER(_Net), _P64, _P64, _P64, ctypes.c_int64,
                                  ctypes.POINTER(ctypes.c_uint32),
                                  ctypes.POINTER(ctypes.c_uint32),
                                  ctypes.POINTER(ctypes.c_double)]
    return lib


def available() -> bool:
    """Whether the C fast path could be compiled and loaded."""
    return _library() is not None


def _ptr(array: np.ndarray):
    if array.dtype != np.int64 or not array.flags.c_contiguous:
        raise ValueError("fast path arrays must be C-contiguous int64")
    return array.ctypes.data_as(_P64)


def train_samples(trainer, x_q: np.ndarray, y: np.ndarray, order: np.ndarray,
                  lr_shift: int) -> np.ndarray:
    """Train ``trainer`` on samples ``order`` of (x_q, y); returns each layer's loss sum."""
    lib = _library()
    if lib is None:
        raise RuntimeError("the C fast path is not available (no working C compiler)")
    from golden.inttrain import input_frac_bits

    model, rule = trainer.model, trainer.rule
    config, fmt = model.config, model.fmt
    L = config.num_layers
    keep: list = []  # every array handed to C stays alive until the call returns

    def arr(values, ctype):
        a = (ctype * len(values))(*values)
        keep.append(a)
        return a

    for st, lay in zip(trainer.stored, model.layers, strict=True):
        for name in st:
            st[name] = np.ascontiguousarray(st[name], dtype=np.int64)
        lay.W = np.ascontiguousarray(lay.W, dtype=np.int64)
        lay.b = np.ascontiguousarray(lay.b, dtype=np.int64)
        lay.U = np.ascontiguousarray(lay.U, dtype=np.int64)
        if lay.V is not None:
            lay.V = np.ascontiguousarray(lay.V, dtype=np.int64)

    def ptrs(arrays):
        return arr([None if a is None else ctypes.cast(_ptr(a), ctypes.c_void_p)
                    for a in arrays], ctypes.c_void_p)

    def pp(arrays):
        return ctypes.cast(ptrs(arrays), ctypes.POINTER(_P64))

    theta = np.array(trainer.thresholds, dtype=np.int64)
    sig = np.ascontiguousarray(trainer.table, dtype=np.int64)
    rsq = np.ascontiguousarray(fmt.table, dtype=np.int64)
    keep += [theta, sig, rsq]
    src = [-1 if config.feedback_source(i) is None else config.feedback_source(i)
           for i in range(L)]
    net = _Net(
        L=L, T=config.loops, K=config.num_classes, D=config.input_size,
        goodness_mode=int(config.algo == "ffcl" and config.feedback == "goodness"),
        loss_last=int(rule.loss_iterations == "last"), nearest=int(rule.rounding == "nearest"),
        f=trainer.fine_bits, state_bits=fmt.state_bits, S=fmt.frac_bits,
        Q=fmt.rsqrt_frac_bits, rsq_k=fmt.rsqrt_index_bits, P1=input_frac_bits(fmt, 0),
        lam=lr_shift, boost=rule.upper_lr_boost,
        hidden=arr(list(config.hidden), ctypes.c_int), src=arr(src, ctypes.c_int),
        w_exp=arr([lay.w_exp for lay in model.layers], ctypes.c_int),
        v_exp=arr([lay.v_exp or 0 for lay in model.layers], ctypes.c_int),
        Wc=pp([st["W"] for st in trainer.stored]), bc=pp([st["b"] for st in trainer.stored]),
        Uc=pp([st["U"] for st in trainer.stored]),
        Vc=pp([st.get("V") for st in trainer.stored]),
        W=pp([lay.W for lay in model.layers]), b=pp([lay.b for lay in model.layers]),
        U=pp([lay.U for lay in model.layers]), V=pp([lay.V for lay in model.layers]),
        theta=_ptr(theta), sig=_ptr(sig), rsq=_ptr(rsq),
        wlo=trainer.limits["W"][0], whi=trainer.limits["W"][1],
        blo=trainer.limits["b"][0], bhi=trainer.limits["b"][1],
    )
    x_q = np.ascontiguousarray(x_q, dtype=np.int64)
    y = np.ascontiguousarray(y, dtype=np.int64)
    order = np.ascontiguousarray(order, dtype=np.int64)
    if order.size and (order.min() < 0 or order.max() >= x_q.shape[0]):
        raise ValueError("order must index the samples")
    state_round = ctypes.c_uint32(trainer.rounding_lfsr.state)
    state_label = ctypes.c_uint32(trainer.label_lfsr.state)
    loss = np.zeros(L, dtype=np.float64)
    status = lib.train_samples(ctypes.byref(net), _ptr(x_q), _ptr(y), _ptr(order), order.size,
                               ctypes.byref(state_round), ctypes.byref(state_label),
                               loss.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
    if status != 0:
        raise MemoryError("the C fast path could not allocate its buffers")
    trainer.rounding_lfsr.state = state_round.value
    trainer.label_lfsr.state = state_label.value
    return loss
