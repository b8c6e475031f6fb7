# amaranth: UnusedElaboratable=no
"""The W and V passes of a layer update: P update lanes read-modify-writing stored words.

docs/training-engine.md ("UPDATE"): the weight words are laid out as the forward pass
reads them (word j of tile tau holds W[tau P + p, j] for lane p, ``pack_rows``), so a
pass walks them tile by tile. Per tile: lane p takes the d and rho of neuron tau P + p
for the whole tile, the replay generator is restored to kappa^W_1, then every column of
the tile is one stored word of P entries: read, updated by P
:class:`rtl.update_lane.UpdateLane` with v_j and kappa_j broadcast, and written back
:attr:`WeightPass.write_delay` cycles after its read. The feed-forward columns (W, v from
the image for layer 1, else from the v buffer) come first, then the feedback columns (V,
v of the feedback source), as the golden trainer draws their kappa: the replay continues
from kappa^W_n_in to kappa^V_1.

The tiles run back to back. The d and rho come from two banks of P registers: the lanes
read their own bank while the shadow bank is loaded with the next tile's (one neuron a
cycle from the error and rho buffers), and the shadow is copied into the lanes' bank in
the cycle before the next tile's first word reaches the lanes, so the current tile's
last word and the next tile's first take their own neurons' values in consecutive
cycles. The next tile's first read issues right after the current tile's last (its
writes still drain: different words), and the replay is restored in the cycle of that
last read. Only the first tile waits for a whole shadow load (:attr:`shadow_load`), and a
tile of fewer columns than a shadow load takes waits for it (:attr:`load_interval`); the
drain is paid once per layer (:meth:`WeightPass.cycles`).

On a single-port store (iCE40 SPRAM in one bank, ``port="single"``) a cycle reads or
writes. The pass then reads a word every other cycle: the read issued in pass cycle 2 i
reaches the memory in cycle 2 i + 1 (the store's address register) and its word is
written in cycle 2 i + :attr:`WeightPass.write_delay`, an even number (2 + 6), so reads
take the odd cycles and writes the even ones: the port is busy in every cycle of the
pass, each word read once and written once, and the lanes take a word every other cycle
(what one port allows whatever the schedule). The slots run from the layer's first read
to its last, across the tiles (a tile that waits for its shadow waits an even number of
cycles). Bursts of write_delay - 1 reads, then as many cycles for their writes, would be
as fast in the steady state but end the layer with a longer tail.

On two SPRAM banks (even and odd addresses, ``port="banked"``) a cycle may read one bank
and write the other. The pass cycles alternate between the banks' *slots*: a word is
read only in a cycle of its bank's slot (cycle c, counted from ``run`` at 0, reads the
words of parity (c - 1) mod 2), so a run of consecutive words is read one a cycle, and a
word that breaks the alternation (the first of a layer, of its V columns, of a tile, or
after a wait) waits at most a cycle. Its write comes write_delay cycles later, an even
number, in a cycle of the other bank's slot: a read never meets a write of its bank,
whatever the words, and the lanes are busy in nearly every cycle, as on block RAM
(:func:`banked_read_cycles`).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Array, Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from golden.intmodel import IntModel
from golden.inttrain import TrainRule
from golden.lfsr import LFSR_WIDTH
from rtl.error_scan import error_entry_layout
from rtl.input_scaler import V_BITS
from rtl.lfsr import WordGenerator
from rtl.params import check_choice, check_positive_int
from rtl.resources import Product
from rtl.select import is_zero
from rtl.update_lane import STORED_KINDS, UpdateLane
from rtl.weight_store import PORTS, WeightStore

__all__ = ["SHIFT_SHAPE", "WeightPass", "banked_read_cycles", "load_interval", "read_cycles",
           "tile_cycles"]

#: An update shift k as the passes take it: every k an UpdateLane accepts (-64..32).
SHIFT_SHAPE = signed(8)


def _width(depth: int) -> int:
    return Shape.cast(range(max(2, depth))).width


def _check_port(port: str) -> str:
    check_choice("Port", port, PORTS)
    return port


def _spacing(port: str, spacing: int | None) -> int:
    """The fewest cycles from a read to the next: ``spacing``, by default a cycle, or two
    on a single port (a write between)."""
    return (2 if _check_port(port) == "single" else 1) if spacing is None else spacing


def _banked_step(spacing: int) -> int:
    """Cycles between two consecutive words' reads on two banks: ``spacing``, or a cycle
    more when it is even (consecutive words alternate banks, and so must their slots)."""
    return spacing + 1 - spacing % 2


def load_interval(lanes: int, *, weight_latency: int, port: str,
                  spacing: int | None = None, shadow: bool = True) -> int:
    """Fewest cycles from a tile's first read to the next tile's: the next tile's shadow
    load starts with this tile's bank switch (``weight_latency - 1`` cycles after its
    first read) and takes P = ``lanes`` cycles; on a single port rounded up to a multiple
    of the reads' ``spacing`` (two unless a serial pass's, :attr:`WeightPass.spacing`), so
    reads keep their slots (two banks align each read to its slot instead,
    :func:`banked_read_cycles`). Without a ``shadow`` load (a serial pass reads d and rho
    as its lane takes them) nothing but the reads holds a tile back: 0."""
    if not shadow:
        return 0
    interval = weight_latency - 1 + lanes
    if _check_port(port) != "single":
        return interval
    step = _spacing(port, spacing)
    return -(-interval // step) * step


def tile_cycles(lanes: int, columns: int, *, weight_latency: int, port: str,
                spacing: int | None = None, shadow: bool = True) -> int:
    """Cycles from a tile's first read to the next tile's on a ``"dual"`` or ``"single"``
    port: its ``columns`` reads back to back (one a cycle, or every other cycle on a
    single port; every ``spacing`` cycles if given), unless the next tile's shadow load
    takes longer (:func:`load_interval`; none without a ``shadow`` load)."""
    reads = _spacing(port, spacing) * columns
    return max(reads, load_interval(lanes, weight_latency=weight_latency, port=port,
                                    spacing=spacing, shadow=shadow))


def banked_read_cycles(lanes: int, neurons: int, ff_columns: int, fb_columns: int = 0, *,
                       weight_latency: int, ff_base: int = 0, fb_base: int = 0,
                       spacing: int = 1, shadow: bool = True) -> int:
    """:func:`read_cycles` on two banks: the tiles' runs of consecutive words (tile tau's
    W words from ``ff_base`` + tau ``ff_columns``, its V words from ``fb_base`` + tau
    ``fb_columns``), each starting in its first word's slot (the pass's cycle c, counted
    from ``run`` at 0, is the slot of the words of parity (c - 1) mod 2), a tile no
    sooner than :func:`load_interval` after the one before. Reads are at least
    ``spacing`` cycles apart (a serial pass's P): within a run every ``spacing`` cycles
    if it is odd, the words' slots alternating with them, else a cycle more. The earliest
    first read is in cycle P + 1 (:attr:`WeightPass.shadow_load`; 1 without a ``shadow``
    load): cycles from it to the last read."""
    interval = load_interval(lanes, weight_latency=weight_latency, port="banked",
                             shadow=shadow)
    step = _banked_step(spacing)
    earliest = cycle = lanes + 1 if shadow else 1
    last = cycle
    for tile in range(-(-neurons // lanes)):
        first = None
        for base, length in ((ff_base + tile * ff_columns, ff_columns),
                             (fb_base + tile * fb_columns, fb_columns)):
            if not length:
                continue
            cycle += (cycle - 1 - base) % 2                  # the word's slot
            first = cycle if first is None else first
            last = cycle + (length - 1) * step
            cycle = last + spacing
        cycle = max(cycle, first + interval)                # the next tile's shadow
    return last - earliest + 1


def read_cycles(lanes: int, neurons: int, ff_columns: int, fb_columns: int = 0, *,
                weight_latency: int, port: str, ff_base: int = 0, fb_base: int = 0,
                spacing: int | None = None, shadow: bool = True) -> int:
    """Cycles from a layer's first read to its last (both counted) over ``ff_columns`` W
    and ``fb_columns`` V words a tile: the tiles back to back (:func:`tile_cycles`), the
    last one's reads (on a single port 2 columns - 1 cycles; ``spacing`` (columns - 1) +
    1 if given); on two banks from the earliest first read, by
    :func:`banked_read_cycles` (the only one the words' addresses ``ff_base`` and
    ``fb_base`` matter to)."""
    if _check_port(port) == "banked":
        return banked_read_cycles(lanes, neurons, ff_columns, fb_columns,
                                  weight_latency=weight_latency, ff_base=ff_base,
                                  fb_base=fb_base, spacing=_spacing(port, spacing),
                                  shadow=shadow)
    columns = ff_columns + fb_columns
    tiles = -(-neurons // lanes)
    last = _spacing(port, spacing) * (columns - 1) + 1
    return (tiles - 1) * tile_cycles(lanes, columns, weight_latency=weight_latency,
                                     port=port, spacing=spacing, shadow=shadow) + last


class WeightPass(wiring.Component):
    """The W (and V) update passes of one layer, tile by tile.

    Parameters
    ----------
    model : IntModel
        The model: formats, layer sizes (the widest layer, the most columns).
    rule : TrainRule
        The rule (rounding, stored widths, the shifts the lanes are built for).
    lanes : int
        P, update lanes (the MAC lanes of the forward pass: one word holds P weights).
    words : int
        Weight words of the weight memory.
    product_latency : int, optional
        The update lanes borrow multipliers (the MAC lanes', ``rtl.core.Core(lend=True)``)
        through ``a``/``b``/``product``, answering this many cycles later; every delay of
        the pass follows :attr:`lane_latency`. Default: a multiplier per lane.
    operand_bits : int, optional
        A borrowed multiplier's signed operand width (default 16).
    weight_latency : {2, 3}, optional
        Cycles from ``weights.addr`` to ``weights.data``: the weight store's latency
        (:attr:`rtl.program.Program.weight_latency`; default
        :data:`rtl.weight_store.WeightStore.LATENCY`).
    port : {"dual", "single", "banked"}, optional
        What a cycle of the weight store may do (:attr:`rtl.weight_store.WeightStore.port`):
        ``"dual"`` (the default, block RAM) a word read and another written every cycle;
        ``"single"`` (one SPRAM bank) a read or a write, so a word is read every other
        cycle; ``"banked"`` (two SPRAM banks) a read of one bank and a write of the
        other, each word read in its bank's slot (module docstring).
    compact_lanes : bool, optional
        Lanes in their small-part form (``UpdateLane(compact=True)``): the same words in
        the same cycles. Default False.
    lend_lane : bool, optional
        Lend lane 0 to another unit while this pass idles (the b and U pass, which runs
        after it: ``rtl.bias_label_pass.BiasLabelPass(borrowed_lane=...)``), through the
        ``guest`` port, so that unit needs no lane of its own (for a part as small as
        the UP5K). While ``guest.run`` is high the lane takes the guest's entries, with
        v = 1; its ``en`` stays this pass's (low: no word is read then), so this pass
        writes nothing. Default False.
    serial : bool, optional
        One update lane, which takes a word's P entries in P consecutive cycles (the
        small part's: a lane is some 500 of the UP5K's logic cells), instead of P lanes
        taking them in one; a word is read every P cycles (:attr:`spacing`), and written
        P - 1 cycles later than P lanes would (a cycle more where a port's slots need it,
        :attr:`write_delay`). Each entry's d and rho are read from their buffers as it
        goes in (a neuron a cycle, as the shadow load reads them), so there are no banks
        of d and rho registers and no shadow load to wait for. The words and the kappa
        are the same. Default False.
    replay_network : bool, optional
        Whether the replay generator has its own leap-ahead network (default True);
        without it the pass shows the replay's word and when it steps
        (``replay_word``, ``replay_take``) and takes the word after it on
        ``replay_following`` (:class:`rtl.lfsr.WordGenerator` ``network``).
    held_addresses : bool, optional
        Only with ``serial``: each word's address held for its write in
        ceil(:attr:`write_delay` / :attr:`spacing`) registers, each loaded once a word
        (the reads are at least :attr:`spacing` cycles apart, so a register loaded
        ``spacing`` cycles after the one before still holds the same word), instead of a
        register per cycle of the delay (each a logic cell of its own on iCE40, for a
        part as small as the UP5K: on the iCEBreaker's digits build 4 of 12 bits and a
        line of 9 one-bit loads instead of 8 of 12 bits). The same words in the same
        cycles. Default False.
    late_replay : bool, optional
        Only with ``serial``: the lane takes kappa from the replay generator's register,
        which steps when the lane takes a word's last entry (and is rewound with a
        tile's last word's), instead of a copy of it carried with the word's address
        (two registers of 32 bits, fed by registers: each bit a logic cell of its own on
        iCE40, for a part as small as the UP5K). The same words in the same cycles.
        Default False.
    late_rounding : bool, optional
        Only with ``late_replay``: the lane takes each entry's rho and kappa a cycle
        after the entry (``UpdateLane(late_rounding=True)``): rho read at the entry's
        own neuron, the replay stepped and rewound a cycle after the word's last entry.
        R then waits in one register instead of two (a logic cell a bit of its own on
        iCE40, for a part as small as the UP5K). The same words in the same cycles.
        Default False.
    c_memory : bool, optional
        Only with ``serial``: the lane's stored values on their way to its add in a
        block RAM (``UpdateLane(c_memory=True)``, one block RAM more) instead of a line
        of registers (each bit a logic cell of its own on iCE40, for a part as small as
        the UP5K). The same words in the same cycles. Default False.

    The P :class:`rtl.update_lane.UpdateLane` (one if ``serial``) and the replay generator (a
    :class:`rtl.lfsr.WordGenerator` without seeding, ``restore``d to kappa^W_1 at every
    tile) are its submodules. Beside the pipeline it holds two banks of P d and rho
    registers (d's 16 bits and rho's low ``max_shift`` bits, all a lane uses) and the
    last tile's lane mask.

    Members
    -------
    run : In(1)
        Held high while the step runs (:meth:`cycles`): the first tile's shadow load,
        the tiles' passes back to back, the drain (:attr:`drain` cycles).
    done : Out(1)
        The last tile's drain ends this cycle (its last word is written).
    tiles, neurons : In(...)
        ceil(N / P) and N of the layer; lanes beyond N write their entry's old 0 (padding).
    ff_columns, fb_columns : In(range(max_columns + 1))
        n_in and N_src (0 without feedback).
    ff_base, fb_base : In(range(words))
        The first W and V word of the layer.
    k_ff, k_fb : In(signed(...))
        The update shifts k of W and V (z applied).
    first : In(unsigned(32))
        kappa^W_1 of the update.
    first_layer : In(1)
        v of the feed-forward columns are the pixels (``image``), not the v buffer.
    errors : In(memory.ReadPort.Signature(addr_width=..., shape=error_entry_layout()))
    rho : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(32)))
        The error and rho buffers (neuron i at i), read one cycle after the address.
    image : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(input_bits)))
    v : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(15)))
        The pixels and the v buffer (column j at j, the feedback's after n_in).
    weights : In(memory.ReadPort.Signature(addr_width=..., shape=unsigned(P * B_m)))
        The stored weight words, read ``weight_latency`` cycles after the address.
    write : Out(wiring.Signature({"valid", "addr", "data": Out}))
        An updated word to store (the core's load port).
    a, b : Out(ArrayLayout(signed(operand_bits), P))
        Only with ``product_latency``: lane p's multiplier operands (-d, v).
    product : In(ArrayLayout(signed(2 * operand_bits), P))
        Only with ``product_latency``: ``a[p] * b[p]``, ``product_latency`` cycles later.
    guest : In(lanes[0].guest_signature)
        Only with ``lend_lane``: lane 0 for another unit
        (:attr:`rtl.update_lane.UpdateLane.guest_signature`), never while ``run``.
    """

    def __init__(self, model: IntModel, rule: TrainRule, *, lanes: int, words: int,
                 product_latency: int | None = None, operand_bits: int = 16,
                 weight_latency: int = WeightStore.LATENCY, port: str = "dual",
                 compact_lanes: bool = False, serial: bool = False,
                 replay_network: bool = True, lend_lane: bool = False,
                 held_addresses: bool = False, late_replay: bool = False,
                 c_memory: bool = False, late_rounding: bool = False) -> None:
        if not isinstance(model, IntModel):
            raise TypeError(f"Model must be a golden.intmodel.IntModel, not {model!r}")
        if not isinstance(rule, TrainRule):
            raise TypeError(f"Rule must be a golden.inttrain.TrainRule, not {rule!r}")
        self.model, self.rule = model, rule
        self.P = check_positive_int("Lane count", lanes)
        self.words = check_positive_int("Weight word count", words)
        if weight_latency not in (WeightStore.LATENCY, WeightStore.DEEP_LATENCY) \
                or isinstance(weight_latency, bool):
            raise ValueError(f"Weight latency must be {WeightStore.LATENCY} or "
                             f"{WeightStore.DEEP_LATENCY}, not {weight_latency!r}")
        self.weight_latency = weight_latency
        self.port = _check_port(port)
        if not isinstance(serial, bool):
            raise TypeError(f"Serial must be a bool, not {serial!r}")
        if serial and lanes < 2:
            raise ValueError(f"A serial pass takes the entries of a word of at least 2 "
                             f"lanes, not {lanes}: one lane is serial already")
        self.serial = serial
        if not isinstance(held_addresses, bool):
            raise TypeError(f"Held addresses must be a bool, not {held_addresses!r}")
        if held_addresses and not serial:
            raise ValueError("Held addresses are a serial pass's: they need serial=True")
        self.held_addresses = held_addresses
        if not isinstance(late_replay, bool):
            raise TypeError(f"Late replay must be a bool, not {late_replay!r}")
        if late_replay and not serial:
            raise ValueError("A late replay is a serial pass's: it needs serial=True")
        self.late_replay = late_replay
        if not isinstance(c_memory, bool):
            raise TypeError(f"C memory must be a bool, not {c_memory!r}")
        if c_memory and not serial:
            raise ValueError("A lane's c memory is a serial pass's (one block RAM for its "
                             "one lane): it needs serial=True")
        self.c_memory = c_memory
        if not isinstance(late_rounding, bool):
            raise TypeError(f"Late rounding must be a bool, not {late_rounding!r}")
        if late_rounding and not (late_replay and compact_lanes):
            raise ValueError("Late rounding takes kappa from a late replay into a compact "
                             "lane: it needs late_replay=True and compact_lanes=True")
        self.late_rounding = late_rounding
        config, fmt = model.config, model.fmt
        hidden = config.hidden
        self.max_columns = max(config.input_size, *hidden)
        k_shape = SHIFT_SHAPE
        word_bits = lanes * rule.store_bits
        # Made here, not in elaborate, so the fit check can ask them what they need (and
        # the lanes validate the borrowed multiplier's widths).
        self.lanes = [UpdateLane.for_model(model, rule, product_latency=product_latency,
                                           compact=compact_lanes, c_memory=c_memory,
                                           late_rounding=late_rounding)
                      for _ in range(1 if serial else lanes)]
        self.product_latency = product_latency
        if not isinstance(lend_lane, bool):
            raise TypeError(f"Lend lane must be True or False, not {lend_lane!r}")
        self.lend_lane = lend_lane
        borrowed = {}
        if product_latency is not None:
            operands = data.ArrayLayout(signed(operand_bits), lanes)
            borrowed = {"a": Out(operands), "b": Out(operands),
                        "product": In(data.ArrayLayout(signed(2 * operand_bits), lanes))}
        super().__init__({
            "run": In(1), "done": Out(1),
            "tiles": In(range(-(-max(hidden) // lanes) + 1)),
            "neurons": In(range(max(hidden) + 1)),
            "ff_columns": In(range(self.max_columns + 1)),
            "fb_columns": In(range(self.max_columns + 1)),
            "ff_base": In(range(max(2, words))), "fb_base": In(range(max(2, words))),
            "k_ff": In(k_shape), "k_fb": In(k_shape),
            "first": In(LFSR_WIDTH),
            "first_layer": In(1),
            "errors": In(memory.ReadPort.Signature(addr_width=_width(max(hidden)),
                                                   shape=error_entry_layout())),
            "rho": In(memory.ReadPort.Signature(addr_width=_width(max(hidden)),
                                                shape=unsigned(LFSR_WIDTH))),
            "image": In(memory.ReadPort.Signature(addr_width=_width(config.input_size),
                                                  shape=unsigned(fmt.input_bits))),
            "v": In(memory.ReadPort.Signature(addr_width=_width(2 * self.max_columns),
                                              shape=unsigned(V_BITS))),
            "weights": In(memory.ReadPort.Signature(addr_width=_width(words),
                                                    shape=unsigned(word_bits))),
            "write": Out(wiring.Signature({"valid": Out(1), "addr": Out(range(max(2, words))),
                                           "data": Out(unsigned(word_bits))})),
            **borrowed,
            **({} if replay_network else {"replay_word": Out(LFSR_WIDTH), "replay_take": Out(1),
                                          "replay_following": In(LFSR_WIDTH)}),
            **({"guest": In(self.lanes[0].guest_signature)} if lend_lane else {}),
        })
        self.replay = WordGenerator(offset=0, seed_bits=0, network=replay_network)
        # The read of pass cycle c meets the memory in cycle c + weight_latency - 1, its
        # write comes in cycle c + write_delay: reads on even cycles (or in their bank's
        # slots) miss the writes (of their bank) only if those two are an odd number of
        # cycles apart; on one port read every S cycles (a serial pass's spacing), if
        # they are not a multiple of S apart.
        if not self._slots_apart(self.write_delay):
            raise RuntimeError(f"A {port} pass reads in slots of {self.spacing} cycles and "
                               f"needs a distance from a read to a write that is not a "
                               f"multiple of {2 if port == 'banked' else self.spacing}, not "
                               f"{self.write_delay - self.weight_latency + 1}")

    def _slots_apart(self, write_delay: int) -> bool:
        """Whether a write ``write_delay`` cycles after its read's address never meets a
        read of its bank (module docstring)."""
        distance = write_delay - self.weight_latency + 1
        if self.port == "banked":
            return distance % 2 == 1
        return self.port == "dual" or distance % self.spacing != 0

    def products(self) -> list[Product]:
        """The P lanes' multipliers (none when borrowed). The addresses multiply nothing:
        the tile's first neuron and first words are running sums."""
        return [product for lane in self.lanes for product in lane.products()]

    @property
    def lane_latency(self) -> int:
        """Cycles of an update lane (:attr:`rtl.update_lane.UpdateLane.latency`, with the
        borrowed multiplier's latency if any)."""
        return UpdateLane.latency_for(self.product_latency)

    @property
    def spacing(self) -> int:
        """Fewest cycles from a read to the next: one, or two on a single port (a write
        between); a serial pass's P, or at least two on a single port."""
        return max(2 if self.port == "single" else 1, self.P if self.serial else 1)

    @property
    def write_pad(self) -> int:
        """Cycles a serial pass holds a finished word before its write so that the write
        misses the reads of its bank (0 or 1; 0 unless serial)."""
        if not self.serial:
            return 0
        unpadded = self.weight_latency + self.lane_latency + self.P - 1
        return 0 if self._slots_apart(unpadded) else 1

    @property
    def write_delay(self) -> int:
        """Cycles from a word's read address to its write: the weight store's latency,
        the lanes' input stage and the lane; a serial pass's lane takes the word's last
        entry P - 1 cycles after its first, then :attr:`write_pad`."""
        serial = self.P - 1 + self.write_pad if self.serial else 0
        return self.weight_latency + self.lane_latency + serial

    @property
    def drain(self) -> int:
        """Cycles after the last tile's last read until ``done`` (the cycle after its
        write)."""
        return self.write_delay + 1

    @property
    def shadow_load(self) -> int:
        """Cycles from ``run`` to the first tile's first read: the cycle ``run`` rises,
        then the P shadow reads (the last one's d and rho land in time for the lanes'
        bank, ``weight_latency - 1`` cycles after the read); a serial pass loads no
        shadow: the first cycle only."""
        return 1 if self.serial else self.P + 1

    @property
    def load_interval(self) -> int:
        """Fewest cycles from a tile's first read to the next tile's (:func:`load_interval`)."""
        return load_interval(self.P, weight_latency=self.weight_latency, port=self.port,
                             spacing=self.spacing, shadow=not self.serial)

    def pass_cycles(self, columns: int) -> int:
        """Cycles from a tile's first read to its last over ``columns`` words: one every
        :attr:`spacing` cycles (on two banks, once in its slot; with an even spacing, a
        cycle more each)."""
        step = _banked_step(self.spacing) if self.port == "banked" else self.spacing
        return step * (columns - 1) + 1

    def tile_cycles(self, columns: int) -> int:
        """Cycles from a tile's first read to the next tile's (:func:`tile_cycles`; on
        two banks without the slots' waits, which :meth:`cycles` counts)."""
        return tile_cycles(self.P, columns, weight_latency=self.weight_latency,
                           port="dual" if self.port == "banked" else self.port,
                           spacing=self.spacing, shadow=not self.serial)

    def cycles(self, neurons: int, ff_columns: int, fb_columns: int = 0, *,
               ff_base: int = 0, fb_base: int = 0) -> int:
        """Cycles of the step for a layer of ``neurons`` over ``ff_columns`` W and
        ``fb_columns`` V columns (their first words at ``ff_base`` and ``fb_base``,
        which only two banks' slots depend on): the first tile's shadow load, the
        tiles back to back, the last tile's pass and the drain (module docstring)."""
        return (self.shadow_load
                + read_cycles(self.P, neurons, ff_columns, fb_columns,
                              weight_latency=self.weight_latency, port=self.port,
                              ff_base=ff_base, fb_base=fb_base, spacing=self.spacing,
                              shadow=not self.serial)
                + self.drain)

    def elaborate(self, platform) -> Module:
        m = Module()
        P = self.P
        m.submodules.replay = self.replay
        if not self.replay.network:
            replay = self.replay.words
            m.d.comb += [self.replay_word.eq(replay.payload),
                         self.replay_take.eq(replay.valid & replay.ready),
                         self.replay.following.eq(self.replay_following)]
        lanes = self.lanes
        for p, lane in enumerate(lanes):
            m.submodules[f"lane_{p}"] = lane
            if self.product_latency is not None:
                m.d.comb += [self.a[p].eq(lane.a), self.b[p].eq(lane.b),
                             lane.product.eq(self.product[p])]
        hidden = self.model.config.hidden
        most_tiles = -(-max(hidden) // P)
        ff = self.ff_columns

        # The pass side: count (the column of the tile being read), tile, the running
        # W and V word addresses. The loader side, one tile ahead: load_count (the lane
        # whose d and rho are read), load_first (the tile's first neuron), load_tile.
        count = Signal(range(2 * self.max_columns + 1))
        tile = Signal(range(max(2, most_tiles + 1)))
        drain = Signal(range(self.drain + 1))
        load_count = Signal(range(P + 1))
        load_first = Signal(range(max(hidden) + P + 1))
        load_tile = Signal(range(max(2, most_tiles + 1)))

        # Two banks: the shadow registers are loaded with the next tile's d and rho while
        # the lanes take the current tile's from their own bank, which is switched (the
        # shadow copied in) in the cycle before the next tile's first word reaches the
        # lanes. The lanes read a register as before: no logic is added on their inputs.
        # A lane uses rho's low max_shift bits only (R never has more bits than k).
        d_shape, rho_bits = lanes[0].d.shape(), lanes[0].max_shift
        shadow_d = Array(Signal(d_shape, name=f"shadow_d_{p}") for p in range(P))
        shadow_rho = Array(Signal(rho_bits, name=f"shadow_rho_{p}") for p in range(P))
        lane_d = [Signal(d_shape, name=f"lane_d_{p}") for p in range(P)]
        lane_rho = [Signal(rho_bits, name=f"lane_rho_{p}") for p in range(P)]

        # Shadow registers: d and rho of the next tile's neurons, one lane per cycle (the
        # buffers answer a cycle after the address).
        shadow_index, shadow_take = Signal.like(load_count), Signal()
        m.d.sync += shadow_take.eq(0)
        with m.If(shadow_take):
            m.d.sync += [shadow_d[shadow_index].eq(self.errors.data.d),
                         shadow_rho[shadow_index].eq(self.rho.data[:rho_bits])]
        # The tile's first neuron, tile x P as a running sum: the product was a real
        # multiplier for P not a power of two, and held MNIST 784-256-256's 9-lane
        # training build to 53.2 MHz (tile -> x 9 -> rho buffer address, 18.8 ns).
        m.d.comb += [self.errors.addr.eq(load_first + load_count),
                     self.rho.addr.eq(load_first + load_count)]
        # Lanes beyond the layer's last neuron keep the padding 0. Only the last tile has
        # such lanes (every earlier one is full), so one mask, set while the last tile's
        # shadow loads, and a bit per word saying it is the last tile's.
        ragged = Signal(P)

        # issue: a word's read (its address on weights.addr, the store's register takes
        # it); named, so a harness finds it in every configuration (a name only).
        issue, loaded, tile_start = Signal(name="issue"), Signal(), Signal()
        idle = Signal()
        feedback = count >= ff
        last_tile = tile == self.tiles - 1
        # The next W and V word, running: the tiles' words follow each other (tile tau's
        # W words at ff_base + tau n_in + j), so no tile x column count sits before the
        # weight memory's address (it held the FFCL training build to 69.9 MHz).
        ff_addr, fb_addr = Signal.like(self.weights.addr), Signal.like(self.weights.addr)
        # What the column pipeline, the loader and the pass share: the pass drives issue
        # and tile_start (and idles), the loader says when a tile's shadow is loaded.
        st = SimpleNamespace(
            count=count, tile=tile, drain=drain, load_count=load_count,
            load_first=load_first, load_tile=load_tile, shadow_d=shadow_d,
            shadow_rho=shadow_rho, lane_d=lane_d, lane_rho=lane_rho,
            shadow_index=shadow_index, shadow_take=shadow_take, ragged=ragged, issue=issue,
            loaded=loaded, tile_start=tile_start, idle=idle, feedback=feedback,
            last_tile=last_tile, ff_addr=ff_addr, fb_addr=fb_addr)
        if self.serial:
            # The tile's first neuron as the pass reads it (tile x P, running): a serial
            # lane reads its entries' d and rho itself (no shadow, nothing to wait for).
            st.pass_first = Signal.like(load_first, name="pass_first")
            m.d.comb += loaded.eq(1)
        if self.late_replay:
            # Whether the word read is its tile's last (the pass drives it).
            st.last_column = Signal(name="last_column")
        self._columns(m, st)
        if not self.serial:
            self._loader(m, st)
        self._pass(m, st)
        return m

    def _columns(self, m: Module, st: SimpleNamespace) -> None:
        """The column pipeline: a word's address issued, its data with v and kappa into
        the lanes (from the bank of d and rho switched in at the tile's first word), the
        updated word written ``lane_latency`` cycles later."""
        count, feedback, ff = st.count, st.feedback, self.ff_columns
        ff_addr, fb_addr = st.ff_addr, st.fb_addr
        # Issue (address) -> data + lanes -> lat -> write. The weight store answers in
        # weight_latency (2, or 3 deep) cycles, the v and image buffers in one: their
        # data waits in v_value (and v_late); the column kind (W or V), the tile's first
        # word and the last tile travel with the address.
        m.d.comb += [self.weights.addr.eq(Mux(feedback, fb_addr, ff_addr)),
                     # Layer 1's feedback v start the v buffer (its inputs are the pixels).
                     self.v.addr.eq(Mux(self.first_layer, count - ff, count)),
                     self.image.addr.eq(count)]
        stages = self._column_stages(m, st)
        if self.serial:
            self._serial_column(m, st, stages)
            return
        self._lane_columns(m, st, stages)

    def _column_stages(self, m: Module, st: SimpleNamespace) -> SimpleNamespace:
        """The stages from a word's address to the lanes: its kind (W or V), address, v
        and kappa, the tile's first word and the last tile travel with it, a stage per
        cycle of the weight store's latency; returns what reaches the lanes, the bank
        switch (the tile's first word a cycle from the lanes) and the stage before them
        (``ahead``)."""
        replay, lanes, wl = self.replay, self.lanes, self.weight_latency
        issue, tile_start, feedback = st.issue, st.tile_start, st.feedback
        last_tile = st.last_tile
        issued_1, in_lane = Signal(), Signal()
        addr_1, in_addr = Signal.like(self.weights.addr), Signal.like(self.weights.addr)
        fb_1, in_fb, image_1 = Signal(), Signal(), Signal()
        start_1, last_1, in_last = Signal(), Signal(), Signal()
        kappa_1, in_kappa = Signal(LFSR_WIDTH), Signal(LFSR_WIDTH)
        v_value = Signal(lanes[0].v.shape())
        v_late = v_value
        # A serial pass's lane takes a word's entries over P cycles: the registers it reads
        # (the column's companions as they reach it) hold them until the next word's
        # arrive (loaded by the valid bit of the stage they are in); the stages before
        # are sampled only in their word's cycle.
        if wl == WeightStore.LATENCY:
            pipeline = [(None, issued_1.eq(issue)), (None, in_lane.eq(issued_1)),
                        (None, addr_1.eq(self.weights.addr)), (issued_1, in_addr.eq(addr_1)),
                        (None, fb_1.eq(feedback)), (issued_1, in_fb.eq(fb_1)),
                        (None, start_1.eq(tile_start)),
                        (None, last_1.eq(last_tile)), (issued_1, in_last.eq(last_1)),
                        (None, image_1.eq(self.first_layer & ~feedback)),
                        (None, kappa_1.eq(replay.words.payload)),
                        (issued_1, in_kappa.eq(kappa_1)),
                        (issued_1, v_value.eq(Mux(image_1, self.image.data, self.v.data)))]
            # The tile's first word is a cycle from the lanes: switch their bank.
            switch = start_1
            ahead = issued_1
        else:
            # A deep store's word comes a cycle later: so do its column's companions.
            issued_2, addr_2 = Signal(), Signal.like(self.weights.addr)
            fb_2, kappa_2, start_2, last_2 = Signal(), Signal(LFSR_WIDTH), Signal(), Signal()
            v_late = Signal.like(v_value, name="v_late")
            pipeline = [(None, issued_1.eq(issue)), (None, issued_2.eq(issued_1)),
                        (None, in_lane.eq(issued_2)),
                        (None, addr_1.eq(self.weights.addr)), (None, addr_2.eq(addr_1)),
                        (issued_2, in_addr.eq(addr_2)),
                        (None, fb_1.eq(feedback)), (None, fb_2.eq(fb_1)),
                        (issued_2, in_fb.eq(fb_2)),
                        (None, start_1.eq(tile_start)), (None, start_2.eq(start_1)),
                        (None, last_1.eq(last_tile)), (None, last_2.eq(last_1)),
                        (issued_2, in_last.eq(last_2)),
                        (None, image_1.eq(self.first_layer & ~feedback)),
                        (None, kappa_1.eq(replay.words.payload)),
                        (None, kappa_2.eq(kappa_1)), (issued_2, in_kappa.eq(kappa_2)),
                        (None, v_value.eq(Mux(image_1, self.image.data, self.v.data))),
                        (issued_2, v_late.eq(v_value))]
            switch = start_2
            ahead = issued_2
        if not self.serial:
            m.d.sync += [statement for _, statement in pipeline]
        else:
            for when, statement in pipeline:
                if when is None:
                    m.d.sync += statement
                else:
                    with m.If(when):
                        m.d.sync += statement
        if self.lend_lane:
            # v = 1 for the guest's entries: the register the lanes read is set while
            # the guest runs (from its first cycle on, before its first entry, which
            # comes a cycle later at the earliest). A synchronous set costs no LUT on
            # iCE40 (SB_DFFSS, SB_DFFSR), where a multiplexer after it costs one a bit.
            with m.If(self.guest.run):
                m.d.sync += v_late.eq(1)
        return SimpleNamespace(in_lane=in_lane, in_addr=in_addr, in_fb=in_fb,
                               in_last=in_last, in_kappa=in_kappa, v_late=v_late,
                               switch=switch, ahead=ahead)

    def _serial_column(self, m: Module, st: SimpleNamespace, stages: SimpleNamespace) -> None:
        """A serial pass's column: the word's first neuron travels beside its address to
        the one lane (:meth:`_serial_lane`)."""
        wl, ahead = self.weight_latency, stages.ahead
        in_lane, in_addr, in_fb = stages.in_lane, stages.in_addr, stages.in_fb
        in_last, in_kappa, v_late = stages.in_last, stages.in_kappa, stages.v_late
        # The word's first neuron, beside its address: the lane reads its entries'
        # d and rho from it, the first a cycle ahead (``ahead``: the word's stage
        # before the lane), when the base is still a stage back.
        bases = [Signal.like(st.pass_first, name=f"base_{i}") for i in range(wl - 1)]
        in_base = Signal.like(st.pass_first, name="in_base")
        m.d.sync += bases[0].eq(st.pass_first)
        m.d.sync += [bases[i].eq(bases[i - 1]) for i in range(1, wl - 1)]
        with m.If(ahead):
            m.d.sync += in_base.eq(bases[-1])
        column = SimpleNamespace(in_lane=in_lane, in_addr=in_addr, in_fb=in_fb,
                                 in_last=in_last, in_kappa=in_kappa, v_late=v_late,
                                 ahead=ahead, ahead_base=bases[-1], in_base=in_base)
        self._serial_lane(m, st, column)

    def _lane_columns(self, m: Module, st: SimpleNamespace, stages: SimpleNamespace) -> None:
        """The P lanes' inputs (each its slice of the word, its neuron's d and rho from
        the bank switched in at the tile's first word) and the updated word's write,
        ``lane_latency`` cycles later (the last tile's padding lanes written as 0)."""
        P, B_m, lanes, lat = self.P, self.rule.store_bits, self.lanes, self.lane_latency
        shadow_d, shadow_rho, lane_d, lane_rho = st.shadow_d, st.shadow_rho, st.lane_d, st.lane_rho
        ragged, switch, v_late = st.ragged, stages.switch, stages.v_late
        in_lane, in_addr, in_fb = stages.in_lane, stages.in_addr, stages.in_fb
        in_last, in_kappa = stages.in_last, stages.in_kappa
        with m.If(switch):
            m.d.sync += [lane_d[p].eq(shadow_d[p]) for p in range(P)]
            m.d.sync += [lane_rho[p].eq(shadow_rho[p]) for p in range(P)]
        for p, lane in enumerate(lanes):
            entry = {"en": in_lane,
                     "c": self.weights.data[p * B_m:(p + 1) * B_m].as_signed(),
                     "d": lane_d[p], "v": v_late, "rho": lane_rho[p], "kappa": in_kappa,
                     "k": Mux(in_fb, self.k_fb, self.k_ff),
                     "select": STORED_KINDS.index("W")}
            if p == 0:
                entry = {name: self._lent(m, lane, name, value)
                         for name, value in entry.items()}
            m.d.comb += [getattr(lane, name).eq(value) for name, value in entry.items()]
        out_addr, out_last = in_addr, in_last
        for i in range(lat):
            reg = Signal.like(in_addr, name=f"w_addr_{i}")
            last = Signal(name=f"w_last_{i}")
            m.d.sync += [reg.eq(out_addr), last.eq(out_last)]
            out_addr, out_last = reg, last
        m.d.comb += [self.write.valid.eq(lanes[0].valid), self.write.addr.eq(out_addr),
                     self.write.data.eq(Cat(Mux(~out_last | ragged[p], lanes[p].out, 0)[:B_m]
                                            for p in range(P)))]

    def _lent(self, m: Module, lane: UpdateLane, name: str, value):
        """What lane 0's input ``name`` takes: ``value``, or with ``lend_lane`` the
        guest's while it runs (this pass idles then; the lane's ``out`` goes to the
        guest). en stays the pass's: low while the guest runs, so valid is too and the
        pass writes nothing (the guest times its entries' results itself); v is the
        pass's register, set to 1 then."""
        if not self.lend_lane or name in ("en", "v"):
            return value
        if name == "c":
            m.d.comb += self.guest.out.eq(lane.out)
        return Mux(self.guest.run, getattr(self.guest, name), value)

    def _serial_lane(self, m: Module, st: SimpleNamespace, column: SimpleNamespace) -> None:
        """A serial pass's one lane: a word's P entries into it in P consecutive cycles,
        entry p with neuron (the word's first) + p's d and rho, read from their buffers
        the cycle before; their new values gathered into the word, which is written
        after the last (``write_pad`` cycles later)."""
        P, B_m, lat = self.P, self.rule.store_bits, self.lane_latency
        lane = self.lanes[0]
        # entry: the entry the lane takes (0 in the word's cycle, ``in_lane``); rest: the
        # word's other entries, shifted down one a cycle.
        entry = Signal(range(P), name="entry")
        rest = Signal((P - 1) * B_m, name="rest")
        enter = Signal()
        m.d.comb += enter.eq(column.in_lane | ~is_zero(entry))
        with m.If(enter):
            m.d.sync += entry.eq(Mux(entry == P - 1, 0, entry + 1))
        with m.If(column.in_lane):
            m.d.sync += rest.eq(self.weights.data[B_m:])
        with m.Else():
            m.d.sync += rest.eq(rest[B_m:])
        # The buffers answer a cycle after the address: the next entry's neuron, which is
        # the next word's first when that word is a cycle from the lane (its entry 0
        # follows the last entry of the word before, or nothing).
        neuron = Mux(column.ahead, column.ahead_base, column.in_base + entry + 1)
        # A late rounding's rho comes a cycle after its entry: read at the entry's own
        # neuron (the one its padding test compares, below).
        m.d.comb += [self.errors.addr.eq(neuron),
                     self.rho.addr.eq(column.in_base + entry if self.late_rounding
                                      else neuron)]
        value = Mux(column.in_lane, self.weights.data[:B_m], rest[:B_m])
        kappa = column.in_kappa
        if self.late_replay:
            kappa = self._late_replay(m, st, column, enter & (entry == P - 1))
        entries = {"en": enter, "c": value.as_signed(), "d": self.errors.data.d,
                   "v": column.v_late, "rho": self.rho.data[:lane.max_shift],
                   "kappa": kappa, "k": Mux(column.in_fb, self.k_fb, self.k_ff),
                   "select": STORED_KINDS.index("W")}
        m.d.comb += [getattr(lane, name).eq(self._lent(m, lane, name, value))
                     for name, value in entries.items()]
        # The word's address, held for its P entries, reaches the lane's output with the
        # first new value and stays until the last; beside each entry, whether it is a
        # neuron of the layer (the last tile's others write their padding 0).
        real = Signal(name="real")
        m.d.comb += real.eq(column.in_base + entry < self.neurons)
        out_addr, out_real = column.in_addr, real
        for i in range(lat):
            if self.held_addresses:
                # The address is held apart (_held_address), a register a word.
                kept = Signal(name=f"w_real_{i}")
                m.d.sync += kept.eq(out_real)
                out_real = kept
                continue
            reg = Signal.like(column.in_addr, name=f"w_addr_{i}")
            kept = Signal(name=f"w_real_{i}")
            m.d.sync += [reg.eq(out_addr), kept.eq(out_real)]
            out_addr, out_real = reg, kept
        if self.held_addresses:
            out_addr = self._held_address(m, st)
        leave = Signal(range(P), name="leave")
        with m.If(lane.valid):
            m.d.sync += leave.eq(Mux(leave == P - 1, 0, leave + 1))
        last_entry = lane.valid & (leave == P - 1)
        new = Mux(out_real, lane.out, 0)[:B_m]
        gathered = Signal((P - 1 + self.write_pad) * B_m, name="gathered")
        with m.If(lane.valid):
            m.d.sync += gathered.eq(Cat(gathered[B_m:], new))
        if not self.write_pad:
            m.d.comb += [self.write.valid.eq(last_entry), self.write.addr.eq(out_addr),
                         self.write.data.eq(Cat(gathered, new))]
            return
        # A cycle later, so that the write misses the reads of its bank (held addresses
        # are held until then).
        if self.held_addresses:
            write_addr, valid = out_addr, Signal(name="write_valid")
            m.d.sync += valid.eq(last_entry)
        else:
            write_addr = Signal.like(out_addr, name="write_addr")
            valid = Signal(name="write_valid")
            m.d.sync += [valid.eq(last_entry), write_addr.eq(out_addr)]
        m.d.comb += [self.write.valid.eq(valid), self.write.addr.eq(write_addr),
                     self.write.data.eq(gathered)]


    def _late_replay(self, m: Module, st: SimpleNamespace, column: SimpleNamespace,
                     last_entry):
        """A serial pass's kappa with ``late_replay``: the replay's word itself, stepped
        as the lane takes a word's last entry, rewound to kappa^W_1 then if the word is
        its tile's last (and as ``run`` rises, :meth:`_pass`). A word's first entry
        comes at the earliest a cycle after the last entry of the word before, so the
        replay shows each word's kappa through its P entries; no copy of it travels with
        the word's address."""
        replay = self.replay
        # The tile's last word, beside its address (loaded as the others are: the
        # pass's last_column in the word's read).
        ahead = [Signal(name=f"last_column_{i + 1}") for i in range(self.weight_latency - 1)]
        in_last_column = Signal(name="in_last_column")
        m.d.sync += ahead[0].eq(st.last_column)
        m.d.sync += [ahead[i].eq(ahead[i - 1]) for i in range(1, len(ahead))]
        with m.If(column.ahead):
            m.d.sync += in_last_column.eq(ahead[-1])
        step, rewind = last_entry, last_entry & in_last_column
        if self.late_rounding:
            # The lane takes the last entry's kappa a cycle later: step (and rewind) a
            # cycle later, the word's last bit kept for it (the next word's may be in).
            step, rewind = Signal(name="step_late"), Signal(name="rewind_late")
            m.d.sync += [step.eq(last_entry), rewind.eq(last_entry & in_last_column)]
        m.d.comb += [replay.words.ready.eq(step), replay.restore.eq(rewind),
                     replay.restore_word.eq(self.first)]
        return replay.words.payload

    def _held_address(self, m: Module, st: SimpleNamespace) -> Signal:
        """A serial pass's written word's address (``held_addresses``), held through
        :attr:`write_delay` cycles from its read: ``n`` = ceil(write_delay / S)
        registers, S = :attr:`spacing`, the k-th loaded from the one before k S cycles
        after the read (from the read address in the read's cycle). A read is at least
        S cycles after the one before, so the k-th register holds the word from cycle
        k S + 1 after its read to (k + 1) S, and the last one in its write's cycle."""
        S, delay = self.spacing, self.write_delay
        count = max(1, -(-delay // S))
        # When each register loads: the read (issue), delayed 1 to (n - 1) S cycles.
        loads = [st.issue]
        for i in range((count - 1) * S):
            late = Signal(name=f"issued_late_{i + 1}")
            m.d.sync += late.eq(loads[-1])
            loads.append(late)
        held = self.weights.addr
        for k in range(count):
            reg = Signal.like(self.weights.addr, name=f"held_addr_{k}")
            with m.If(loads[k * S]):
                m.d.sync += reg.eq(held)
            held = reg
        return held

    def _loader(self, m: Module, st: SimpleNamespace) -> None:
        """The loader: each tile's d and rho into the shadow bank, one lane a cycle."""
        P, wl = self.P, self.weight_latency
        load_count, load_first, load_tile = st.load_count, st.load_first, st.load_tile
        shadow_take, shadow_index, ragged = st.shadow_take, st.shadow_index, st.ragged
        loaded, tile_start, idle = st.loaded, st.tile_start, st.idle
        # The loader: the first tile's d and rho when the step starts, then each next
        # tile's once the lanes have taken the shadow's (the bank switch).
        with m.FSM(name="loader"):
            with m.State("IDLE"):
                with m.If(self.run & idle):
                    m.d.sync += [load_count.eq(0), load_first.eq(0), load_tile.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):
                m.d.sync += [shadow_take.eq(1), shadow_index.eq(load_count),
                             load_count.eq(load_count + 1),
                             ragged.eq(Cat(load_first + p < self.neurons for p in range(P)))]
                with m.If(load_count == P - 1):
                    m.d.sync += [load_count.eq(0), load_first.eq(load_first + P),
                                 load_tile.eq(load_tile + 1)]
                    m.next = "FULL"
            # The next load's first d and rho land the cycle after the bank switch, so it
            # starts in the switch's cycle (weight_latency - 1 after the tile's first
            # read): the transition is one cycle before.

            def after_switch():
                m.next = "IDLE"
                with m.If(load_tile != self.tiles):
                    m.next = "LOAD"

            with m.State("FULL"):
                # The tile may start: its last d and rho land before its bank switch.
                m.d.comb += loaded.eq(1)
                with m.If(tile_start):
                    if wl == WeightStore.LATENCY:
                        after_switch()
                    else:
                        m.next = "TAKEN"
            if wl != WeightStore.LATENCY:
                with m.State("TAKEN"):
                    # The cycle after a deep store's first read.
                    after_switch()


    def _spaced(self, m: Module, issue: Signal) -> Signal:
        """High when :attr:`spacing` cycles have passed since the last read (a serial
        pass's lane is still taking the last word's entries until then)."""
        wait = Signal(range(self.spacing), name="wait")
        with m.If(issue):
            m.d.sync += wait.eq(self.spacing - 1)
        with m.Elif(~is_zero(wait)):
            m.d.sync += wait.eq(wait - 1)
        return is_zero(wait)

    def _pass(self, m: Module, st: SimpleNamespace) -> None:
        """The pass: a word issued a cycle (every other cycle on a single port), tile after
        tile, the replay rewound for each, then the drain."""
        replay, ff, fb = self.replay, self.ff_columns, self.fb_columns
        count, tile, drain, issue, loaded = st.count, st.tile, st.drain, st.issue, st.loaded
        tile_start, idle, feedback, last_tile = st.tile_start, st.idle, st.feedback, st.last_tile
        ff_addr, fb_addr = st.ff_addr, st.fb_addr
        # Two banks: the slot of the pass's cycle c is words of parity (c - 1) mod 2.
        slot = Signal() if self.port == "banked" else None
        # One lane: a word every P cycles at most, counted in every state (the slots of one
        # port space a serial pass's reads themselves, below).
        spaced = self._spaced(m, issue) if self.serial and self.port != "single" else None
        with m.FSM(name="pass"):
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                with m.If(self.run):
                    m.d.sync += [count.eq(0), tile.eq(0), ff_addr.eq(self.ff_base),
                                 fb_addr.eq(self.fb_base)]
                    if self.serial:
                        # No shadow load to wait through: the replay is rewound to
                        # kappa^W_1 now, for a first read in PASS's first cycle.
                        m.d.sync += st.pass_first.eq(0)
                        m.d.comb += [replay.restore.eq(1), replay.restore_word.eq(self.first)]
                    if self.port == "banked":
                        m.d.sync += slot.eq(0)
                    m.next = "PASS"
            with m.State("PASS"):
                if self.port == "banked":
                    m.d.sync += slot.eq(~slot)
                # A tile's first word waits for its shadow load; then a word per cycle.
                can_issue = (count != 0) | loaded
                if spaced is not None:
                    can_issue &= spaced
                if self.port == "banked":
                    # Two banks: a word is read in its bank's slot, the pass's cycles
                    # alternating from run on (module docstring).
                    m.d.comb += issue.eq(can_issue & (self.weights.addr[0] == slot))
                elif self.port == "single" and self.spacing > 2:
                    # One port, a serial pass: a read every S = P cycles, from the layer's
                    # first read on, and the writes in other cycles (write_delay).
                    write_slot = Signal(range(self.spacing))
                    with m.If(issue | (count != 0) | (tile != 0)):
                        m.d.sync += write_slot.eq(Mux(write_slot == self.spacing - 1, 0,
                                                      write_slot + 1))
                    m.d.comb += issue.eq(can_issue & is_zero(write_slot))
                elif self.port == "single":
                    # One port: every other cycle is a write's (module docstring), from
                    # the layer's first read on, so a tile that waited for its shadow
                    # keeps the slots.
                    write_slot = Signal()
                    with m.If(issue | (count != 0) | (tile != 0)):
                        m.d.sync += write_slot.eq(~write_slot)
                    m.d.comb += issue.eq(can_issue & ~write_slot)
                else:
                    m.d.comb += issue.eq(can_issue)
                last_column = count == ff + fb - 1
                # Rewind the replay to kappa^W_1 before each tile's first word: with the
                # previous tile's last word (restore wins over the transfer), or while
                # the tile waits.
                if self.late_replay:
                    # The lane steps and rewinds the replay (_late_replay).
                    m.d.comb += [st.last_column.eq(last_column),
                                 tile_start.eq(issue & is_zero(count))]
                else:
                    m.d.comb += [replay.words.ready.eq(issue),
                                 replay.restore.eq(Mux(issue, last_column, is_zero(count))),
                                 replay.restore_word.eq(self.first),
                                 tile_start.eq(issue & is_zero(count))]
                with m.If(issue):
                    m.d.sync += count.eq(count + 1)
                    with m.If(feedback):
                        m.d.sync += fb_addr.eq(fb_addr + 1)
                    with m.Else():
                        m.d.sync += ff_addr.eq(ff_addr + 1)
                    with m.If(last_column):
                        m.d.sync += [count.eq(0), tile.eq(tile + 1)]
                        if self.serial:
                            m.d.sync += st.pass_first.eq(st.pass_first + self.P)
                        with m.If(last_tile):
                            m.d.sync += drain.eq(0)
                            if self.port == "single":
                                m.d.sync += write_slot.eq(0)
                            m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == self.drain - 1):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"

