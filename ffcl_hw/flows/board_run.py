"""The board flow: a run's test images classified by a board over its UART host link.

The device is asked what it is first (IDENT) and must hold the run's integer model: the
same configuration and formats (model hash) and, unless ``load`` sends the run's weights
first, the same weights (the whole-model checksum IDENT reports). Every result is checked
bit for bit against the golden integer model; a cycle count is reported only when every
sample matched (CFU Playground's rule), next to the closed form.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ffcl_hw.device import Device, HostLinkError, HostLinkTimeout, Port
from ffcl_hw.flows.evaluate import load_run_dataset
from ffcl_hw.flows.quantize import load_quantized_run
from ffcl_hw.flows.simulate import check_results
from ffcl_hw.flows.synth import BAUD
from ffcl_hw.runs import RunError, write_json
from rtl.host_link import LinkIdentity, link_identity
from rtl.program import build_program
from sim.amaranth_sim import CoreResult

__all__ = ["BOARD_FILE", "board_run", "open_port"]

#: What the flow writes into the run folder.
BOARD_FILE = "board.json"


def open_port(port: str, *, baud: int, timeout: float) -> Port:
    """Open ``port`` (a device such as /dev/ttyUSB1 or COM3, or a pyserial URL such as
    socket://host:1234) with pyserial, 8N1.

    Raises
    ------
    RunError
        If the port cannot be opened; the message says what to check.
    """
    import serial

    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError, OSError) as error:
        raise RunError(f"cannot open serial port {port}: {error}. Check the board is plugged "
                       "in and the port name (Linux: ls /dev/ttyUSB* /dev/ttyACM*; the "
                       "iCEBreaker's FPGA UART is the FTDI's second port, e.g. /dev/ttyUSB1), "
                       "and that you may use it (Linux: the dialout group)") from None


def _identify(device: Device, port: str, baud: int, timeout: float,
              idle_seconds: float) -> LinkIdentity:
    """IDENT, once more after an idle pause if the first got no reply (a frame left
    half-sent by an earlier host is dropped by the device's idle timeout)."""
    for _ in range(2):
        try:
            return device.identify()
        except HostLinkTimeout:
            time.sleep(idle_seconds)
        except HostLinkError as error:
            raise RunError(f"the device on {port} did not answer as the host link protocol "
                           f"says: {error}") from None
    raise RunError(f"no answer from a device on {port} at {baud} baud within {timeout:g} s "
                   "(asked twice): is the FPGA configured with an ffcl-hw bitstream (`ffcl-hw "
                   "synth RUN --board ...`, then iceprog or openFPGALoader), is this the "
                   "FPGA's UART, and is --baud the rate it was built for?")


def _check_model(device: Device, identity: LinkIdentity, model, run: Path, port: str,
                 load: bool) -> LinkIdentity:
    """The device's identity once it holds ``model``; RunError naming what differs."""
    try:
        expected = link_identity(model, lanes=identity.lanes, label_lanes=identity.label_lanes,
                                 loadable=identity.loadable, shared=identity.shared)
        device.check(model, lanes=identity.lanes, label_lanes=identity.label_lanes)
    except (HostLinkError, ValueError) as error:
        raise RunError(f"the device on {port} holds another model than {run}: {error}. "
                       f"Build and flash this run's bitstream (ffcl-hw synth {run} --board "
                       "...)") from None
    if load:
        if not identity.loadable:
            raise RunError(f"the device on {port} cannot load weights (its core was built "
                           f"with weights='rom'); flash this run's bitstream instead of "
                           "passing --load")
        try:
            device.load_model(model)
        except HostLinkError as error:
            raise RunError(f"loading {run}'s weights into the device on {port} failed: "
                           f"{error}") from None
        identity = device.identify()
    if not identity.model_loaded:
        raise RunError(f"the device on {port} holds no complete model (its weight memories "
                       "start empty, or a load failed); pass --load to load the run's weights")
    if identity.weights_checksum != expected.weights_checksum:
        raise RunError(f"the device on {port} holds other weights than {run} (same "
                       f"configuration; weights checksum 0x{identity.weights_checksum:08X}, "
                       f"the run's 0x{expected.weights_checksum:08X}); pass --load to load "
                       "the run's weights, or flash its bitstream")
    return identity


def board_run(run: Path, *, port: str, samples: int = 100, baud: int = BAUD,
              load: bool = False, timeout: float = 2.0,
              connect: Callable[[str], Port] | None = None,
              progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Classify ``samples`` test images of ``run``'s data set on the board at ``port``
    and write ``RUN/board.json``.

    Parameters
    ----------
    run : Path
        A quantized run (model.npz and model.int.npz).
    port : str
        Serial device or pyserial URL.
    samples : int
        Test images to classify (at most the test split).
    baud : int
        The link's line rate (the bitstream's; ``ffcl-hw synth`` builds for 115200).
    load : bool
        Load the run's weights over the link first (needed on a board whose weight
        memories start empty, or that holds other weights of the same configuration).
    timeout : float
        Seconds the host waits for each byte of a reply.
    connect : callable, optional
        Opens the port (default :func:`open_port`); tests pass their own.
    progress : callable, optional
        Called with the number of images classified so far.

    Returns
    -------
    dict
        The report written to ``board.json``.
    """
    for name, value in (("--samples", samples), ("--baud", baud)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RunError(f"{name} must be a positive integer, not {value!r}")
    if not timeout > 0:
        raise RunError(f"--timeout must be a positive number of seconds, not {timeout!r}")
    float_model, model = load_quantized_run(run)
    data, _ = load_run_dataset(float_model, None, None)
    count = min(samples, data.n_test)
    images = model.quantize_input(data.x_test[:count])
    golden = model.run(images)

    serial_port = (connect or (lambda p: open_port(p, baud=baud, timeout=timeout)))(port)
    try:
        if hasattr(serial_port, "reset_input_buffer"):
            serial_port.reset_input_buffer()
        device = Device(serial_port)
        # 200 bit times: the device's default idle timeout (docs/host-link.md).
        identity = _identify(device, port, baud, timeout, idle_seconds=200 * 10 / baud)
        start = time.perf_counter()
        identity = _check_model(device, identity, model, run, port, load)
        load_seconds = time.perf_counter() - start if load else None
        results = []
        start = time.perf_counter()
        for i, image in enumerate(images):
            try:
                label, scores, cycles = device.classify(image)
            except HostLinkError as error:
                raise RunError(f"image {i} of {count}: {error}") from None
            results.append(CoreResult(label=label, scores=tuple(scores), cycles=cycles))
            if progress is not None:
                progress(i + 1)
        seconds = time.perf_counter() - start
    finally:
        if hasattr(serial_port, "close"):
            serial_port.close()

    program = build_program(model, lanes=identity.lanes, label_lanes=identity.label_lanes,
                            shared=identity.shared)
    expected = program.cycles()
    mismatches = check_results(results, golden, expected)
    labels = np.array([r.label for r in results])
    cycles = np.array([r.cycles for r in results])
    report: dict[str, Any] = {
        "port": port,
        "baud": baud,
        "samples": count,
        "loaded": load,
        "load_seconds": None if load_seconds is None else round(load_seconds, 3),
        "device": dataclasses.asdict(identity),
        "mismatches": len(mismatches),
        "first_mismatch": str(mismatches[0]) if mismatches else None,
        "agreement": 1 - len({m.sample for m in mismatches}) / count,
        "accuracy": float((labels == data.y_test[:count]).mean()),
        "golden_int_accuracy": float((golden.labels == data.y_test[:count]).mean()),
        # Cycle counts count only when every sample matched the golden model.
        "cycles_per_inference": None if mismatches else {
            "min": int(cycles.min()), "mean": float(cycles.mean()), "max": int(cycles.max())},
        "cycles_formula": expected,
        "seconds": round(seconds, 3),
        "inferences_per_second": count / seconds if seconds > 0 else None,
    }
    write_json(run / BOARD_FILE, report)
    return report
