"""The host link's load transaction: LOAD_BEGIN, LOAD frames, LOAD_COMMIT.

docs/host-link.md describes it. LOAD_BEGIN carries the model hash (refused unless it is the
core's) and a CRC-32 over every write to come; each LOAD frame is one memory write, counted
in a running checksum once it is made; LOAD_COMMIT closes the transaction if the two
checksums agree, and only then does the device hold a complete model again (with two
banks: switches to the bank just written).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.core import LOAD_TARGETS, load_depths, load_layout
from rtl.crc_tree import crc_tree
from rtl.frame_parser import PAYLOAD_LAYOUT
from rtl.protocol import LOAD_BEGIN_SIZE, LOAD_CHECKSUM, READ_SIZE, Command, ErrorCode
from rtl.reply_serialiser import ReplyFrame
from rtl.select import equals, is_zero

__all__ = ["VERDICT_LAYOUT", "LoadTransaction", "load_data_bytes"]

#: The load checksum a bit at a time (no reflection: a byte's most significant bit first).
_CHECKSUM_BIT = LOAD_CHECKSUM.algorithm(data_width=1)

#: What the transaction would do with the load command in hand: the reply (with its
#: error code) or, for a LOAD that checks out, ``write`` (the reply follows the write).
VERDICT_LAYOUT = data.StructLayout({"reply": ReplyFrame, "error": 8, "write": 1})


def load_data_bytes(program) -> int:
    """Bytes of a LOAD frame's data field for a core running ``program``."""
    return -(-load_layout(program)["data"].width // 8)


class LoadTransaction(wiring.Component):
    """The state of a load: model hash check, running CRC-32, model flag, bank.

    The payload of a LOAD or LOAD_BEGIN frame is held in registers as it arrives; nothing
    is acted on before the link says the frame's crc checked out (``decide``). From then
    on ``verdict`` says what to answer; a LOAD that checks out is written through ``write``
    and counts in the running checksum when ``written`` pulses.

    Parameters
    ----------
    program : rtl.program.Program
        The core's program: the load port's layout and memory depths.
    model_hash : int
        The core's :func:`rtl.host_link.model_hash`; LOAD_BEGIN must announce it.
    checksum : int
        The whole-model checksum of the model the memories hold at configuration.
    model_loaded : bool
        The memories hold a complete model at configuration.
    banked : bool
        The core has two banks: a load writes the one not in use, and a good commit
        switches to it (one bank: the model is gone from LOAD_BEGIN until a good commit).
    holds_read : bool
        The small part's option (a lean training link, :class:`rtl.host_link.HostLink`):
        the payload registers also take a READ frame's payload (target, address, count),
        which ``held`` gives, so that the link keeps no registers of its own for it
        (40 flip-flops, each fed by the UART's byte register and so a logic cell of its
        own on the iCE40). A READ leaves the transaction as it was: its bytes land in
        registers that hold a LOAD frame only until its write is made, and LOAD_BEGIN's
        only until its checksum is copied, both before the parser takes the next frame.
        Default False.
    serial_checksum : bool
        The small part's option too: a LOAD byte counts in the pending checksum a bit a
        cycle over the 8 cycles after it arrives (a shift register's step, one XOR per
        polynomial tap), instead of at once through the CRC-32's byte-wide XOR trees.
        The next byte comes a UART byte later, and the write (``written``) after the
        frame's crc byte. Default False.
    one_bound : bool
        The small part's option too: a LOAD's address is compared once, with its
        target's depth picked from the constants by the target, instead of with each
        memory's depth (a comparison with a constant is an iCE40 carry chain of 17 cells,
        its LUTs unused). The same verdict for every target and address. Default False.

    Members
    -------
    cmd : In(8)
        The frame's command, from its byte on.
    length : In(16)
        The frame's length field, from its bytes on.
    header : In(1)
        A frame's header is complete: its payload (if any) follows.
    payload : In(stream.Signature(PAYLOAD_LAYOUT, always_ready=True))
        The frame's payload bytes.
    decide : In(1)
        Act on the frame (a load command whose crc checked out) as ``verdict`` says.
    verdict : Out(VERDICT_LAYOUT)
        The answer to the frame in hand, from the cycle after its crc byte on.
    write : Out(load_layout(program))
        The held LOAD's memory write.
    written : In(1)
        The write has been made: it counts in the running checksum.
    model_ok : Out(1)
        The memories hold a complete model.
    checksum : Out(32)
        The whole-model checksum of that model.
    bank : Out(1)
        The bank in use (two banks).
    held : Out(8 * READ_SIZE)
        Only with ``holds_read``: the last READ payload's bytes, byte 0 lowest.
    """

    def __init__(self, program, *, model_hash: int, checksum: int, model_loaded: bool,
                 banked: bool, holds_read: bool = False, serial_checksum: bool = False,
                 one_bound: bool = False) -> None:
        for name, flag in (("Holds read", holds_read), ("Serial checksum", serial_checksum),
                           ("One bound", one_bound)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} must be True or False, not {flag!r}")
        for name, value in (("Model hash", model_hash), ("Checksum", checksum)):
            if not isinstance(value, int) or not 0 <= value < 1 << 32:
                raise ValueError(f"{name} must be a 32-bit unsigned integer, not {value!r}")
        self.program = program
        self.model_hash = model_hash
        self.initial_checksum = checksum
        self.model_loaded = model_loaded
        self.banked = banked
        self.holds_read = holds_read
        self.serial_checksum = serial_checksum
        self.one_bound = one_bound
        members = {
            "cmd": In(8), "length": In(16), "header": In(1),
            "payload": In(stream.Signature(PAYLOAD_LAYOUT, always_ready=True)),
            "decide": In(1), "verdict": Out(VERDICT_LAYOUT),
            "write": Out(load_layout(program)), "written": In(1),
            "model_ok": Out(1), "checksum": Out(32), "bank": Out(1),
        }
        if holds_read:
            members["held"] = Out(8 * READ_SIZE)
        super().__init__(members)

    @property
    def load_size(self) -> int:
        """Payload bytes of a LOAD frame: target, address (2), data."""
        return 3 + load_data_bytes(self.program)

    def elaborate(self, platform) -> Module:
        m = Module()
        is_load = self.cmd == Command.LOAD
        regs, target, address = self._hold_payload(m, is_load)
        state = self._transaction_state(m, is_load)
        flags = self._registered_checks(m, regs, target, address, is_load, state)
        self._verdict(m, regs, state, flags)
        return m

    def _hold_payload(self, m: Module, is_load: Value) -> tuple[list[Signal], Value, Value]:
        """The payload registers, each taking its byte of a LOAD or LOAD_BEGIN frame (and
        with ``holds_read`` a READ's), and the write they make; returns the registers,
        the LOAD's target and its address."""
        # -- the LOAD payload (target, addr, data) or LOAD_BEGIN's (model hash, checksum),
        # held until the crc is known -------------------------------------------------
        regs = [Signal(8, name=f"load_byte_{i}")
                for i in range(max(self.load_size, LOAD_BEGIN_SIZE))]
        target, address = regs[0], Cat(regs[1], regs[2])
        layout = load_layout(self.program)
        m.d.comb += [
            self.write.target.eq(target[:layout["target"].width]),
            self.write.addr.eq(address[:layout["addr"].width]),
            self.write.data.eq(Cat(*regs[3:self.load_size])[:layout["data"].width]),
        ]
        byte = self.payload.payload
        if self.holds_read:
            m.d.comb += self.held.eq(Cat(*regs[:READ_SIZE]))
        for i, reg in enumerate(regs):
            takes = is_load | (self.cmd == Command.LOAD_BEGIN)
            if self.holds_read and i < READ_SIZE:
                takes = takes | (self.cmd == Command.READ)
            with m.If(self.payload.valid & takes & equals(byte.index, i)):
                m.d.sync += reg.eq(byte.data)
        return regs, target, address

    def _transaction_state(self, m: Module, is_load: Value) -> SimpleNamespace:
        """The transaction's state (model flag, its checksum, bank, whether a load is
        open, the announced checksum) and the running checksum of the writes made."""
        byte = self.payload.payload
        # -- the transaction ----------------------------------------------------------
        # Whether the memories hold a complete model, that model's checksum and (two
        # banks) which bank holds it: set at configuration like the memories themselves,
        # so a reset does not forget that a failed load left a bank half written.
        model_ok = Signal(init=int(self.model_loaded), reset_less=True)
        weights_sum = Signal(32, init=self.initial_checksum, reset_less=True)
        bank = Signal(reset_less=True)
        m.d.comb += [self.model_ok.eq(model_ok), self.checksum.eq(weights_sum),
                     self.bank.eq(bank)]
        loading = Signal()                 # between a good LOAD_BEGIN and LOAD_COMMIT
        announced = Signal(32)             # LOAD_BEGIN's checksum
        running = Signal(32)               # CRC-32 of the writes made in this transaction
        pending = Signal(32)               # ... and of the LOAD frame being received
        with m.If(self.header):
            m.d.sync += pending.eq(running)
        if self.serial_checksum:
            self._serial_checksum(m, pending, self.payload.valid & is_load, byte.data)
        else:
            with m.If(self.payload.valid & is_load):
                # The checksum this write would make; it counts once the write is made.
                m.d.sync += pending.eq(crc_tree(LOAD_CHECKSUM, pending, byte.data))
        with m.If(self.written):
            m.d.sync += running.eq(pending)
        return SimpleNamespace(model_ok=model_ok, weights_sum=weights_sum, bank=bank,
                               loading=loading, announced=announced, running=running)

    def _registered_checks(self, m: Module, regs: list[Signal], target: Value,
                           address: Value, is_load: Value,
                           state: SimpleNamespace) -> SimpleNamespace:
        """The command, length, target, address, model hash and checksum checks the
        verdict looks at, each a register (the fields are stable a UART byte ahead)."""
        running, announced = state.running, state.announced
        # -- what the verdict looks at, registered every cycle --------------------------
        # The fields are stable from the payload's last byte on, a UART byte before the
        # decision: the comparisons of the command, the length, the model hash and the
        # checksums are made a cycle ahead, so the decision tree sees single bits (with
        # the comparisons, it and the answer's registers were the iCE40 build's slowest
        # path).
        begin, load, no_payload = Signal(), Signal(), Signal()
        begin_length, load_length, target_ok, address_ok = Signal(), Signal(), Signal(), Signal()
        hash_ok, checksum_ok = Signal(), Signal()
        m.d.sync += [
            begin.eq(self.cmd == Command.LOAD_BEGIN),
            load.eq(is_load),
            no_payload.eq(is_zero(self.length)),
            begin_length.eq(self.length == LOAD_BEGIN_SIZE),
            load_length.eq(self.length == self.load_size),
            target_ok.eq(~is_zero(target) & (target <= max(LOAD_TARGETS.values()))),
            # Each memory's own bound, all 16 address bits compared: a write beyond it
            # would otherwise land on a low word of a shallower memory (its address
            # port keeps only the bits it has), e.g. ops address 8 of 5 on op 0.
            address_ok.eq(self._bound_check(target, address)),
            hash_ok.eq(Cat(*regs[:4]) == self.model_hash),
            checksum_ok.eq(running == announced),
        ]
        return SimpleNamespace(begin=begin, load=load, no_payload=no_payload,
                               begin_length=begin_length, load_length=load_length,
                               target_ok=target_ok, address_ok=address_ok, hash_ok=hash_ok,
                               checksum_ok=checksum_ok)

    def _verdict(self, m: Module, regs: list[Signal], state: SimpleNamespace,
                 flags: SimpleNamespace) -> None:
        """The verdict on the frame in hand (the first failing check's error, or the
        reply), and on ``decide`` the transaction's next state."""
        model_ok, weights_sum, bank = state.model_ok, state.weights_sum, state.bank
        loading, announced, running = state.loading, state.announced, state.running
        begin, load, checksum_ok = flags.begin, flags.load, flags.checksum_ok
        begin_length, load_length = flags.begin_length, flags.load_length
        target_ok, address_ok = flags.target_ok, flags.address_ok
        hash_ok, no_payload = flags.hash_ok, flags.no_payload
        # -- the verdict, and on ``decide`` the transaction's next state -----------------
        verdict = self.verdict

        def refuse(code: ErrorCode) -> None:
            m.d.comb += [verdict.reply.eq(ReplyFrame.ERROR), verdict.error.eq(code)]

        def refuse_first(*checks: tuple[Signal, ErrorCode]) -> None:
            # An If/Elif arm per (ok, code) check, in order: the frame is refused with the
            # code of the first that fails. The caller's Elif/Else arms follow on.
            for index, (ok, code) in enumerate(checks):
                with (m.Elif if index else m.If)(~ok):
                    refuse(code)

        with m.If(begin):
            # Weights of another configuration (MODEL) are refused before anything is written.
            refuse_first((begin_length, ErrorCode.LENGTH), (hash_ok, ErrorCode.MODEL))
            with m.Else():
                m.d.comb += verdict.reply.eq(ReplyFrame.LOAD_BEGIN)
                with m.If(self.decide):
                    m.d.sync += [loading.eq(1), running.eq(LOAD_CHECKSUM.algorithm.initial_crc),
                                 announced.eq(Cat(*regs[4:8]))]
                    if not self.banked:
                        # One bank: from here until a good commit it holds no complete model.
                        m.d.sync += model_ok.eq(0)
        with m.Elif(load):
            refuse_first((load_length, ErrorCode.LENGTH), (loading, ErrorCode.SEQUENCE),
                         (target_ok, ErrorCode.LOAD), (address_ok, ErrorCode.ADDRESS))
            with m.Else():
                m.d.comb += [verdict.reply.eq(ReplyFrame.LOAD), verdict.write.eq(1)]
        with m.Else():
            refuse_first((no_payload, ErrorCode.LENGTH), (loading, ErrorCode.SEQUENCE))
            with m.Elif(~checksum_ok):
                # A write lost, added or changed: the transaction is void (with two banks
                # the model in use stays in use).
                refuse(ErrorCode.CHECKSUM)
                with m.If(self.decide):
                    m.d.sync += loading.eq(0)
            with m.Else():
                m.d.comb += verdict.reply.eq(ReplyFrame.LOAD_COMMIT)
                with m.If(self.decide):
                    m.d.sync += [loading.eq(0), model_ok.eq(1), weights_sum.eq(announced)]
                    if self.banked:
                        m.d.sync += bank.eq(~bank)

    def _bound_check(self, target: Value, address: Value) -> Value:
        """Whether ``address`` lies below the depth of memory ``target`` (0 for a target
        of no memory). ``one_bound``: one comparison with the target's depth, picked
        from the constants by the target, instead of one per memory."""
        depths = {code: depth for code, depth in load_depths(self.program).items() if depth}
        if not self.one_bound:
            return Cat(*((target == code) & (address < depth)
                         for code, depth in depths.items())).any()
        bound = Const(0, 16)
        for code, depth in depths.items():
            bound = Mux(target == code, depth, bound)
        return address < bound

    def _serial_checksum(self, m: Module, pending: Signal, take, data) -> None:
        """``serial_checksum``: each LOAD byte (``data`` when ``take``) counts in
        ``pending`` a bit a cycle, most significant first, over the 8 cycles after it."""
        bits = Signal(8, name="bits_to_count")
        left = Signal(range(9), name="bits_left")
        with m.If(take):
            m.d.sync += [bits.eq(data), left.eq(8)]
        with m.Elif(~is_zero(left)):
            m.d.sync += [pending.eq(crc_tree(_CHECKSUM_BIT, pending, bits[7])),
                         bits.eq(bits << 1), left.eq(left - 1)]


