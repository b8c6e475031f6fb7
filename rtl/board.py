"""The boards: their platforms, the facts the fit check needs, and the board top.

Each supported board is one :class:`Board` entry of :data:`BOARDS`: the amaranth-boards
platform class that knows its pins (oscillator, UART, LEDs), part, package and the
toolchain templates (Yosys, nextpnr, the packer), beside the few facts about the part
that a fit check needs and the platform does not hold (hard multipliers, block RAM and
SPRAM bits, logic cells) and the clock a flow aims for by default.

:class:`BoardTop` wraps any elaboratable that has ``rx`` (In(1)) and ``tx`` (Out(1))
members, normally :class:`rtl.host_link.HostLink`. Elaborated for its board's platform,
it requests the oscillator, the UART and the LEDs from it, brings the oscillator to the
requested clock with the family's PLL primitive (iCE40 ``SB_PLL40_PAD``, ECP5
``EHXPLLL``) and holds the design in reset until the PLL locks.

The PLL parameters are computed here, by the same searches as Project IceStorm's
``icepll`` and Project Trellis' ``ecppll``, so a flow needs neither tool and can report
the frequency actually achieved before any synthesis runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from amaranth import ClockDomain, Instance, Module, Signal
from amaranth.build import TemplatedPlatform
from amaranth.lib import io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_25F_Platform, ULX3S_45F_Platform, ULX3S_85F_Platform

from rtl.params import check_choice

__all__ = ["BOARDS", "Board", "BoardTop", "Ecp5Pll", "Ice40Pll", "board_info", "ecp5_pll",
           "fpga_family", "ice40_pll", "plan_pll"]

#: FPGA families a flow can build for, as :func:`fpga_family` names them.
FAMILIES = ("ice40", "ecp5")


def fpga_family(platform) -> str | None:
    """The FPGA family ``platform`` builds for, ``"ice40"`` or ``"ecp5"``; None for no
    platform (Amaranth's simulator, the Verilog for cocotb) or any other family.

    Components that map onto a family's primitives (:class:`rtl.weight_store.WeightStore`:
    SPRAM on iCE40, block RAM slices on ECP5) ask this rather than the platform's own
    ``family`` attribute, which Amaranth spells ``"iCE40"`` for SiliconBlue parts.
    """
    family = str(getattr(platform, "family", "") or "").lower()
    return family if family in FAMILIES else None


@dataclass(frozen=True)
class Board:
    """One supported board: its amaranth-boards platform and the facts about its part
    that the fit check needs.

    Attributes
    ----------
    name : str
        The name flows and the CLI use.
    platform : type
        The amaranth-boards platform class: pins, part, package, speed grade, the
        oscillator's frequency and the toolchain templates.
    default_mhz : float
        The core clock a flow aims for when not told otherwise.
    logic_cells : int
        iCE40 logic cells (LUT4 + FF) or ECP5 LUT4s.
    multipliers : int
        Hard multipliers: iCE40 SB_MAC16 (16x16) or ECP5 MULT18X18D (18x18).
    bram_bits : int
        Block RAM initialised at configuration (iCE40 EBR, ECP5 DP16KD).
    spram_bits : int
        Single-port RAM that comes up uninitialised (iCE40 UP5K SPRAM), 0 elsewhere.
    status_leds : tuple of (str, int)
        Platform LED resources lit while the PLL is locked, while the board sends and
        while it receives (as many as the board has, in that order).
    tie_high : tuple of (str, int, str)
        Platform pins (resource, number, subsignal) driven high: on ULX3S the ESP32's
        GPIO0, so that the ESP32 cannot reset the FPGA.
    max_label_lanes : int or None
        Most label lanes a flow chooses by default where logic, not multipliers, limits
        them (iCEBreaker: the digits core with 2 label lanes and its host link take 5,265
        of the UP5K's 5,280 logic cells, docs/synthesis.md); None: as many as the
        multipliers allow.
    constraints : str
        The constraint file under ``constraints/`` for people using other flows (the
        synthesis flow writes its own from the platform; a test checks that they agree).

    Properties give what the platform knows: :attr:`family`, :attr:`device`,
    :attr:`package`, :attr:`speed`, :attr:`clock_mhz`, :attr:`nextpnr_device`.
    """

    name: str
    platform: type[TemplatedPlatform]
    default_mhz: float
    logic_cells: int
    multipliers: int
    bram_bits: int
    status_leds: tuple[tuple[str, int], ...]
    constraints: str
    spram_bits: int = 0
    tie_high: tuple[tuple[str, int, str], ...] = ()
    max_label_lanes: int | None = None

    def make_platform(self) -> TemplatedPlatform:
        """A fresh platform (a platform prepares one design only)."""
        return self.platform()

    @property
    def family(self) -> str:
        """``"ice40"`` or ``"ecp5"``."""
        return fpga_family(self.platform())

    @property
    def device(self) -> str:
        """The part, as its vendor names it (``iCE40UP5K``, ``LFE5U-85F``)."""
        return self.platform.device

    @property
    def package(self) -> str:
        """The package, as the platform names it (``SG48``, ``BG381``)."""
        return self.platform.package

    @property
    def speed(self) -> int | None:
        """The ECP5 speed grade; None on iCE40."""
        speed = getattr(self.platform, "speed", None)
        return int(speed) if speed is not None else None

    @property
    def clock_mhz(self) -> float:
        """The oscillator the platform's default clock resource names."""
        return self.platform().default_clk_frequency / 1e6

    @property
    def nextpnr_device(self) -> str:
        """nextpnr's device flag without dashes (``up5k``, ``85k``)."""
        return self.platform._nextpnr_device_options[self.device].lstrip("-")


def _ulx3s(size: str, platform: type[TemplatedPlatform], luts: int, multipliers: int,
           brams: int) -> Board:
    return Board(
        name=f"ulx3s-{size}f", platform=platform, default_mhz=75.0, logic_cells=luts,
        multipliers=multipliers, bram_bits=brams * 18 * 1024, constraints="ulx3s.lpf",
        status_leds=(("led", 0), ("led", 1), ("led", 2)), tie_high=(("esp32", 0, "gpio0"),))


#: Every supported board. Multiplier, RAM and cell counts are the ones nextpnr's
#: utilisation report gives for the part (ICESTORM_LC/DSP/RAM/SPRAM; TRELLIS_COMB,
#: MULT18X18D, DP16KD). A new board is one entry: its amaranth-boards platform class and
#: these counts (an ECP5 part the lane floorplan should pin also needs its site grid in
#: ffcl_hw.flows.floorplan.ECP5_GRIDS).
BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker", platform=ICEBreakerPlatform, default_mhz=30.0, logic_cells=5280,
        multipliers=8, bram_bits=30 * 4096, spram_bits=4 * 16384 * 16,
        constraints="icebreaker.pcf", status_leds=(("led_g", 0), ("led_r", 0)),
        max_label_lanes=2),
    # 75 MHz: the clock every ULX3S build of docs/synthesis.md was measured against.
    "ulx3s-25f": _ulx3s("25", ULX3S_25F_Platform, 24288, 28, 56),
    "ulx3s-45f": _ulx3s("45", ULX3S_45F_Platform, 43848, 72, 108),
    "ulx3s-85f": _ulx3s("85", ULX3S_85F_Platform, 83640, 156, 208),
}


def board_info(board: str) -> Board:
    """The :class:`Board` called ``board``.

    Raises
    ------
    ValueError
        If the board is not one of :data:`BOARDS`, naming those that are.
    """
    check_choice("Board", board, BOARDS)
    return BOARDS[board]


# -- PLL parameter searches -------------------------------------------------------------

def _mhz(value: float | int | Fraction, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float | Fraction) or value <= 0:
        raise ValueError(f"{what} must be a positive frequency in MHz, not {value!r}")
    # Through str: 62.5 stays 62.5, 33.3 becomes 333/10 rather than a binary fraction.
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


@dataclass(frozen=True)
class Ice40Pll:
    """SB_PLL40 parameters in simple feedback mode (icepll's output).

    f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ).
    """

    divr: int
    divf: int
    divq: int
    filter_range: int
    f_in_mhz: float
    f_pfd_mhz: float
    f_vco_mhz: float
    f_out_mhz: float

    @property
    def achieved_mhz(self) -> float:
        """The output frequency."""
        return self.f_out_mhz


@dataclass(frozen=True)
class Ecp5Pll:
    """EHXPLLL parameters with CLKOP fed back (ecppll's output).

    f_out = f_in * CLKFB_DIV / CLKI_DIV; f_vco = f_out * CLKOP_DIV.
    """

    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int
    f_in_mhz: float
    f_pfd_mhz: float
    f_vco_mhz: float
    f_out_mhz: float

    @property
    def achieved_mhz(self) -> float:
        """The output frequency."""
        return self.f_out_mhz


def ice40_pll(f_in_mhz: float, f_out_mhz: float) -> Ice40Pll:
    """The SB_PLL40 setting closest to ``f_out_mhz``, chosen as icepll chooses it.

    icepll walks DIVR, DIVF, DIVQ upwards and keeps the first setting with the smallest
    error, within the iCE40 limits: 10-133 MHz into the phase detector, a 533-1066 MHz VCO.

    Raises
    ------
    ValueError
        If either frequency lies outside what the PLL accepts (input 10-133 MHz, output
        16-275 MHz).
    """
    f_in, f_out = _mhz(f_in_mhz, "PLL input"), _mhz(f_out_mhz, "PLL output")
    if not 10 <= f_in <= 133:
        raise ValueError(f"iCE40 PLL input must be 10-133 MHz, not {float(f_in)}")
    if not 16 <= f_out <= 275:
        raise ValueError(f"iCE40 PLL output must be 16-275 MHz, not {float(f_out)}")
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                fout = f_vco / 2**divq
                # Strictly smaller error only: the first setting found wins a tie.
                if best is None or abs(fout - f_out) < abs(best[0] - f_out):
                    best = (fout, divr, divf, divq, f_pfd, f_vco)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting turns {float(f_in)} MHz into "
                         f"{float(f_out)} MHz")
    fout, divr, divf, divq, f_pfd, f_vco = best
    # The loop filter setting icepll derives from the phase detector frequency.
    filter_range = next(i + 1 for i, limit in enumerate((17, 26, 44, 66, 101, None))
                        if limit is None or f_pfd < limit)
    return Ice40Pll(divr=divr, divf=divf, divq=divq, filter_range=filter_range,
                    f_in_mhz=float(f_in), f_pfd_mhz=float(f_pfd), f_vco_mhz=float(f_vco),
                    f_out_mhz=float(fout))


def ecp5_pll(f_in_mhz: float, f_out_mhz: float) -> Ecp5Pll:
    """The EHXPLLL setting closest to ``f_out_mhz``, chosen as ecppll chooses it.

    ecppll walks CLKI_DIV (1-128), CLKFB_DIV (1-80) and CLKOP_DIV (1-128) upwards within a
    3.125-400 MHz phase detector and a 400-800 MHz VCO, keeping the smallest error and,
    among equal errors, the VCO nearest 600 MHz. CLKOP_CPHASE shifts CLKOP by 180 degrees
    (half the output divider) as Lattice's tools do; ecppll computes it in float32 and so
    gives one less when CLKOP_DIV/2 is not exactly representable after its rounding (100
    MHz: 2, here 3); the phase does not change the frequency.

    Raises
    ------
    ValueError
        If either frequency lies outside what the PLL accepts (input 8-400 MHz, output
        10-400 MHz).
    """
    f_in, f_out = _mhz(f_in_mhz, "PLL input"), _mhz(f_out_mhz, "PLL output")
    if not 8 <= f_in <= 400:
        raise ValueError(f"ECP5 PLL input must be 8-400 MHz, not {float(f_in)}")
    if not 10 <= f_out <= 400:
        raise ValueError(f"ECP5 PLL output must be 10-400 MHz, not {float(f_out)}")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not Fraction(3125, 1000) <= f_pfd <= 400:
            continue
        for clkfb_div in range(1, 81):
            # With CLKOP fed back, the output is f_pfd * CLKFB_DIV whatever CLKOP_DIV is;
            # CLKOP_DIV only places the VCO.
            fout = f_pfd * clkfb_div
            error = abs(fout - f_out)
            for clkop_div in range(1, 129):
                f_vco = fout * clkop_div
                if not 400 <= f_vco <= 800:
                    continue
                key = (error, abs(f_vco - 600))
                if best is None or key < best[0]:
                    best = (key, clki_div, clkfb_div, clkop_div, f_pfd, f_vco, fout)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting turns {float(f_in)} MHz into "
                         f"{float(f_out)} MHz")
    _, clki_div, clkfb_div, clkop_div, f_pfd, f_vco, fout = best
    return Ecp5Pll(clki_div=clki_div, clkfb_div=clkfb_div, clkop_div=clkop_div,
                   clkop_cphase=clkop_div // 2, f_in_mhz=float(f_in),
                   f_pfd_mhz=float(f_pfd), f_vco_mhz=float(f_vco), f_out_mhz=float(fout))


def plan_pll(board: str, freq_mhz: float | None = None) -> Ice40Pll | Ecp5Pll:
    """The PLL setting of ``board`` for ``freq_mhz`` (default: the board's default clock)."""
    info = board_info(board)
    target = info.default_mhz if freq_mhz is None else freq_mhz
    if info.family == "ice40":
        return ice40_pll(info.clock_mhz, target)
    return ecp5_pll(info.clock_mhz, target)


# -- the top ---------------------------------------------------------------------------

class BoardTop(wiring.Component):
    """A design with a UART on a board: PLL, reset until lock, pins from the platform.

    Parameters
    ----------
    design : Elaboratable
        Anything with members ``rx`` (In(1), the UART line into the FPGA) and ``tx``
        (Out(1)); it runs in the ``sync`` domain this top drives from the PLL.
    board : str
        One of :data:`BOARDS`.
    freq_mhz : float, optional
        The requested clock; default the board's ``default_mhz``. :attr:`pll` says what
        the PLL achieves.

    Elaborated for the board's platform (:meth:`Board.make_platform`), it requests:

    - the platform's default clock (the oscillator) for the PLL;
    - ``uart`` 0: ``rx`` into the FPGA, ``tx`` out of it;
    - the board's :attr:`Board.status_leds`: lit once the PLL has locked, while tx is low
      (sending), while rx is low (receiving); the platform knows which are active low;
    - the board's :attr:`Board.tie_high` pins, driven high.

    Its signature is empty: every port is a pin the platform gives it.
    """

    def __init__(self, design, *, board: str, freq_mhz: float | None = None) -> None:
        self.info = board_info(board)
        for name in ("rx", "tx"):
            if not hasattr(design, name):
                raise TypeError(f"Design must have rx and tx members (a UART), not {design!r}")
        self.design = design
        self.pll = plan_pll(board, freq_mhz)
        super().__init__({})

    @property
    def freq_hz(self) -> float:
        """The clock the design runs at (what the PLL achieves), in Hz."""
        return self.pll.achieved_mhz * 1e6

    def _pll(self, m: Module, clk_in, clk_out: Signal, locked: Signal) -> None:
        pll, info = self.pll, self.info
        if info.family == "ice40":
            # SB_PLL40_PAD: the oscillator's pin (35 on iCEBreaker) is the PLL's own pad,
            # so the pin is taken without a buffer.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=pll.divr, p_DIVF=pll.divf, p_DIVQ=pll.divq,
                p_FILTER_RANGE=pll.filter_range,
                i_PACKAGEPIN=clk_in, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
        else:
            # The attributes tell nextpnr the frequencies, as ecppll's Verilog does, so it
            # constrains the PLL output without a separate constraint.
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{pll.f_in_mhz:g}",
                a_FREQUENCY_PIN_CLKOP=f"{pll.f_out_mhz:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=pll.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll.clkop_div,
                p_CLKOP_CPHASE=pll.clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                p_CLKFB_DIV=pll.clkfb_div,
                i_RST=0, i_STDBY=0, i_CLKI=clk_in, i_CLKFB=clk_out, i_PHASESEL0=0,
                i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk_out, o_LOCK=locked)

    def elaborate(self, platform) -> Module:
        info = self.info
        if fpga_family(platform) != info.family or platform.device != info.device:
            raise ValueError(f"BoardTop for {info.name} must be elaborated for its platform "
                             f"({info.platform.__name__}), not {platform!r}")
        m = Module()

        # The sync domain is defined here, so the platform adds no clock domain of its
        # own: the PLL output clocks everything inside.
        m.domains.sync = cd_sync = ClockDomain("sync")
        clk, locked = Signal(), Signal()
        # Every pin is taken unbuffered (dir="-") and buffered here with amaranth.lib.io,
        # which the platform maps onto its family's I/O cells (SB_IO, IB/OB).
        clk_pin = platform.request(platform.default_clk, dir="-")
        if info.family == "ice40":
            # SB_PLL40_PAD: the oscillator's pin (35 on iCEBreaker) is the PLL's own pad,
            # so the pin goes to the PLL without a buffer.
            clk_in = clk_pin.io
        else:
            m.submodules.clk_buffer = clk_buffer = io.Buffer("i", clk_pin)
            clk_in = clk_buffer.i
        self._pll(m, clk_in, clk, locked)
        m.d.comb += cd_sync.clk.eq(clk)
        # Reset asserts at once while the PLL is unlocked and releases on a clock edge,
        # so no flip-flop leaves reset with a metastable neighbour.
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")

        # Only rx and tx of the UART become ports (ULX3S also wires the modem lines).
        uart = platform.request("uart", 0, dir="-")
        m.submodules.rx_buffer = rx = io.Buffer("i", uart.rx)
        m.submodules.tx_buffer = tx = io.Buffer("o", uart.tx)
        m.submodules.design = design = self.design
        # The UART line is asynchronous to the PLL clock; idle is high, so the
        # synchroniser starts high and reset does not make it send a false start bit.
        m.submodules.rx_sync = FFSynchronizer(rx.i, design.rx, init=1, reset_less=True)
        m.d.comb += tx.o.eq(design.tx)

        status = [locked, ~design.tx, ~design.rx]
        for (name, number), value in zip(info.status_leds, status, strict=False):
            # The platform's pin says whether the LED is active low (iCEBreaker's are).
            m.submodules[f"{name}_{number}"] = led = io.Buffer(
                "o", platform.request(name, number, dir="-"))
            m.d.comb += led.o.eq(value)
        for name, number, subsignal in info.tie_high:
            pins = platform.request(name, number, dir="-")
            m.submodules[f"{name}_{subsignal}"] = pin = io.Buffer("o", getattr(pins, subsignal))
            m.d.comb += pin.o.eq(1)
        return m
