"""cocotb drivers and monitors for ``amaranth.lib.stream`` ports of exported Verilog.

The shape is cocotbext-axi's: a :class:`StreamSource` queues payloads and drives
``<name>__payload``/``<name>__valid`` while honouring ``<name>__ready``; a
:class:`StreamSink` drives ``ready`` and collects the transfers; a :class:`StreamMonitor`
only watches. Each takes a *pause* iterable (``True`` = pause this cycle), so that one
scenario can be crossed with idle and back-pressure patterns (:data:`PAUSES`).

Sink and monitor also check the other side's half of the stream rules
(amaranth.lib.stream): once ``valid`` is high at a clock edge without ``ready``, ``valid``
must stay high and ``payload`` unchanged until the edge that transfers it. A breach is
logged and recorded in ``violations`` (the bench asserts the list is empty at the end), so
that a test can also provoke one on purpose and check that it was seen.

Waiting costs simulation time only where something moves: a source holding ``valid`` and
a monitor watching a held payload sleep until ``ready`` (or the held values) change, and
nothing wakes every cycle while no payload is offered. A design that is busy for
thousands of cycles per transfer (the core) is then limited by the simulator, not by
Python.

Signal names: Amaranth's Verilog flattens ``image.payload`` to ``image__payload``; a
hand-written design's ``image_payload`` is accepted too.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cocotb
from cocotb.triggers import Event, FallingEdge, First, ReadOnly, RisingEdge

__all__ = ["BACKPRESSURE", "IDLE", "NO_PAUSE", "PAUSES", "Pause", "RandomPause", "StreamMonitor",
           "StreamSink", "StreamSource", "stream_signal"]


class Pause:
    """A repeating pause pattern: ``True`` pauses the cycle, ``False`` lets it move.

    Parameters
    ----------
    pattern : sequence of bool or int
        One period of the pattern; iterating the object repeats it forever.
    name : str
        For logs and test names.

    Members
    -------
    pattern : tuple of bool
    name : str
    """

    def __init__(self, pattern: Sequence[bool | int], *, name: str = "") -> None:
        if not pattern or any(p not in (0, 1) for p in pattern):
            raise ValueError(f"Pause pattern must be a non-empty sequence of 0/1 or bool, not "
                             f"{pattern!r}")
        self.pattern = tuple(bool(p) for p in pattern)
        self.name = name or "".join("p" if p else "." for p in self.pattern)

    @classmethod
    def from_offers(cls, offers: Sequence[int], *, name: str = "") -> Pause:
        """The pattern that moves where ``offers`` has 1 (an offer or an acceptance)."""
        return cls([not offer for offer in offers], name=name)

    def __iter__(self) -> Iterator[bool]:
        return itertools.cycle(self.pattern)

    def __repr__(self) -> str:
        return f"Pause({self.name})"


class RandomPause:
    """Pause each cycle with ``probability``, from a seeded generator (the seed repeats
    the run).

    Members
    -------
    probability : float
    seed : int
    """

    def __init__(self, probability: float, *, seed: int) -> None:
        if not 0 <= probability <= 1:
            raise ValueError(f"Pause probability must be between 0 and 1, not {probability!r}")
        self.probability = probability
        self.seed = seed

    def __iter__(self) -> Iterator[bool]:
        rng = random.Random(self.seed)
        while True:
            yield rng.random() < self.probability

    def __repr__(self) -> str:
        return f"RandomPause({self.probability}, seed={self.seed})"


#: Never pause.
NO_PAUSE = Pause([False], name="none")
#: A source that leaves gaps between its transfers (4 of 8 cycles).
IDLE = Pause.from_offers([1, 1, 0, 1, 0, 0, 1, 0], name="idle")
#: A sink that accepts 4 of 9 cycles, in runs of up to three refusals.
BACKPRESSURE = Pause.from_offers([1, 0, 0, 1, 1, 0, 0, 0, 1], name="backpressure")
#: The patterns that benches cross their scenarios with, by name.
PAUSES: dict[str, Pause] = {p.name: p for p in (NO_PAUSE, IDLE, BACKPRESSURE)}


def stream_signal(dut: Any, name: str, field: str) -> Any:
    """The handle of stream ``name``'s ``field`` (``payload``/``valid``/``ready``)."""
    for joiner in ("__", "_"):
        handle = getattr(dut, f"{name}{joiner}{field}", None)
        if handle is not None:
            return handle
    raise AttributeError(f"{dut._name} has no stream signal {name}__{field} or "
                         f"{name}_{field}")


def _high(handle: Any) -> bool:
    value = handle.value
    return value.is_resolvable and bool(value)


def _read(handle: Any) -> int:
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


class _Stream:
    def __init__(self, dut: Any, name: str, clock: Any, *, reset: Any = None) -> None:
        self.dut = dut
        self.name = name
        self.clock = clock
        self.reset = reset
        self.log = dut._log
        self.payload = stream_signal(dut, name, "payload")
        self.valid = stream_signal(dut, name, "valid")
        self.ready = stream_signal(dut, name, "ready")

    def _in_reset(self) -> bool:
        return self.reset is not None and _high(self.reset)


class _Paused:
    # Source and sink: the side that decides when to move.
    def set_pause(self, pause: Iterable[bool] | None) -> None:
        """Use ``pause`` from now on (``None``: never pause)."""
        self.pause = NO_PAUSE if pause is None else pause
        self._pause = iter(self.pause)


class StreamSource(_Stream, _Paused):
    """Drives a stream into the design: ``valid`` held until ``ready``, payload stable.

    ``send`` queues payloads; one coroutine offers them in order. Before each offer it
    takes a step of the pause pattern and, while that says pause, leaves ``valid`` low
    for the cycle; once offered, a payload stays on the port until a clock edge with
    ``ready`` high takes it. ``clear`` (call it with the design's reset) drops what is
    queued and the offer in flight.

    Parameters
    ----------
    dut : cocotb handle
    name : str
        The stream's name in the design (``image`` for ``image__payload``...).
    clock : cocotb handle
    reset : cocotb handle, optional
        While high, nothing is offered.
    pause : iterable of bool, optional
        Idle pattern (:class:`Pause`, :class:`RandomPause`, any iterable).

    Members
    -------
    sent : int
        Payloads transferred so far.
    pause : iterable of bool
        The idle pattern in use (:meth:`set_pause` changes it).
    """

    def __init__(self, dut: Any, name: str, clock: Any, *, reset: Any = None,
                 pause: Iterable[bool] | None = None) -> None:
        super().__init__(dut, name, clock, reset=reset)
        self.set_pause(pause)
        self.sent = 0
        self._queue: deque[int] = deque()
        self._queued = Event()
        self._idle = Event()
        self._idle.set()
        self.valid.value = 0
        self._task = cocotb.start_soon(self._run())

    def send_nowait(self, payloads: int | Iterable[int]) -> None:
        """Queue one payload or several."""
        items = [payloads] if isinstance(payloads, int) else [int(p) for p in payloads]
        self._queue.extend(items)
        if self._queue:
            self._idle.clear()
            self._queued.set()

    async def send(self, payloads: int | Iterable[int]) -> None:
        """Queue payloads and wait until the last has been transferred."""
        self.send_nowait(payloads)
        await self.wait()

    async def wait(self) -> None:
        """Wait until everything queued has been transferred."""
        await self._idle.wait()

    def count(self) -> int:
        """Payloads queued and not yet transferred."""
        return len(self._queue)

    def empty(self) -> bool:
        return not self._queue

    def idle(self) -> bool:
        return self.empty() and self._idle.is_set()

    def clear(self) -> None:
        """Forget the queue and any offer in flight (for a reset); ``valid`` goes low."""
        self._task.cancel()
        self._queue.clear()
        self.valid.value = 0
        self._idle.set()
        self._queued.clear()
        self._task = cocotb.start_soon(self._run())

    def _accepted(self) -> bool:
        # Read in the settled values of a cycle: the next edge takes the payload.
        return _high(self.ready)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self.valid.value = 0
                self._idle.set()
                # Nothing to offer: sleep until something is queued.
                self._queued.clear()
                await self._queued.wait()
                continue
            if self._in_reset():
                self.valid.value = 0
                await FallingEdge(self.reset)
                continue
            # The pause pattern moves only between transfers: once valid is high it stays.
            if next(self._pause):
                self.valid.value = 0
                await RisingEdge(self.clock)
                continue
            self.payload.value = self._queue[0]
            self.valid.value = 1
            while True:
                await ReadOnly()
                if self._accepted():
                    break
                # The design is busy (the core for thousands of cycles): sleep until ready
                # rises instead of polling every cycle.
                await RisingEdge(self.ready)
            await RisingEdge(self.clock)
            self._queue.popleft()
            self.sent += 1


class StreamMonitor(_Stream):
    """Watches a stream without driving it: records transfers, checks the stream rules.

    Parameters
    ----------
    dut, name, clock, reset
        As for :class:`StreamSource`; while ``reset`` is high nothing is recorded.
    callback : callable, optional
        Called with each transferred payload, at the clock edge that transfers it, instead
        of queueing it for :meth:`recv_nowait`.

    Members
    -------
    received : int
        Transfers seen so far.
    violations : list of str
        Breaches of the stream rules by the driving side, in order.
    """

    def __init__(self, dut: Any, name: str, clock: Any, *, reset: Any = None,
                 callback: Callable[[int], None] | None = None) -> None:
        super().__init__(dut, name, clock, reset=reset)
        self._watch(callback)

    def _watch(self, callback: Callable[[int], None] | None) -> None:
        self.callback = callback
        self.received = 0
        self.violations: list[str] = []
        self._queue: deque[int] = deque()
        self._arrived = Event()
        self._task = cocotb.start_soon(self._run())

    # -- collected transfers -----------------------------------------------------------
    def count(self) -> int:
        """Transfers collected and not yet taken."""
        return len(self._queue)

    def empty(self) -> bool:
        return not self._queue

    def recv_nowait(self) -> int:
        return self._queue.popleft()

    async def recv(self) -> int:
        """The next transfer (waits for one)."""
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        return self._queue.popleft()

    async def wait_for(self, count: int) -> None:
        """Wait until ``received`` reaches ``count``."""
        while self.received < count:
            self._arrived.clear()
            await self._arrived.wait()

    # -- the watching loop -------------------------------------------------------------
    def _violation(self, message: str) -> None:
        message = f"{self.name}: {message}"
        self.violations.append(message)
        self.log.error(message)

    def _transfer(self, payload: int) -> None:
        self.received += 1
        if self.callback is not None:
            self.callback(payload)
        else:
            self._queue.append(payload)
        self._arrived.set()

    async def _while_held(self) -> None:
        # Wake when the held offer may be taken or may have been broken.
        await First(RisingEdge(self.ready), self.valid.value_change,
                    self.payload.value_change)

    async def _after_edge(self) -> None:
        pass

    async def _run(self) -> None:
        held: int | None = None   # the payload offered and not taken at the last edge
        while True:
            await ReadOnly()
            if self._in_reset():
                held = None
                await FallingEdge(self.reset)
                continue
            valid = _high(self.valid)
            if held is not None and not valid:
                self._violation(f"valid fell before ready took payload {held:#x}")
                held = None
            if not valid:
                await RisingEdge(self.valid)
                continue
            payload = _read(self.payload)
            if held is not None and payload != held:
                self._violation(f"payload changed from {held:#x} to {payload:#x} while "
                                "waiting for ready")
            if _high(self.ready):
                held = None
                await RisingEdge(self.clock)
                # The edge that made the transfer; a callback may now drive the design.
                self._transfer(payload)
                await self._after_edge()
                continue
            held = payload
            await self._while_held()


class StreamSink(StreamMonitor, _Paused):
    """Takes a stream out of the design: drives ``ready`` by a pause pattern, collects
    the transfers and checks the stream rules like :class:`StreamMonitor`.

    ``ready`` takes one step of the pattern per cycle while a payload is offered, and keeps
    its value between offers. Members as for :class:`StreamMonitor`, and ``pause``, the
    back-pressure pattern in use (:meth:`set_pause` changes it).

    Parameters
    ----------
    dut, name, clock, reset, callback
        As for :class:`StreamMonitor`.
    pause : iterable of bool, optional
        Back-pressure pattern: ``True`` holds ``ready`` low for the cycle.
    """

    def __init__(self, dut: Any, name: str, clock: Any, *, reset: Any = None,
                 pause: Iterable[bool] | None = None,
                 callback: Callable[[int], None] | None = None) -> None:
        _Stream.__init__(self, dut, name, clock, reset=reset)
        self.set_pause(pause)
        self.ready.value = int(not next(self._pause))
        self._watch(callback)

    async def _while_held(self) -> None:
        await RisingEdge(self.clock)
        await self._after_edge()

    async def _after_edge(self) -> None:
        self.ready.value = int(not next(self._pause))
