"""The board top: PLL, reset synchroniser and pins around a design with a UART.

:class:`BoardTop` wraps any elaboratable that has ``rx`` (In(1)) and ``tx`` (Out(1))
members, normally :class:`rtl.host_link.HostLink`. It brings the board oscillator to the
requested clock with the family's PLL primitive (iCE40 ``SB_PLL40_PAD``, ECP5 ``EHXPLLL``),
holds the design in reset until the PLL locks, and names its ports exactly as the
constraint files in ``constraints/`` do.

The PLL parameters are computed here, by the same searches as Project IceStorm's
``icepll`` and Project Trellis' ``ecppll``, so a flow needs neither tool and can report
the frequency actually achieved before any synthesis runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from amaranth import ClockDomain, Const, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["BOARDS", "Board", "BoardTop", "Ecp5Pll", "Ice40Pll", "SynthesisTarget",
           "board_info", "ecp5_pll", "ice40_pll", "plan_pll"]


@dataclass(frozen=True)
class Board:
    """Facts about one supported board.

    Attributes
    ----------
    name : str
        The name flows and the CLI use.
    family : {"ice40", "ecp5"}
    device : str
        The part, as its vendor names it.
    nextpnr_device : str
        nextpnr's device flag without dashes ("up5k", "25k", ...).
    package : str
        nextpnr's package name.
    speed : int or None
        ECP5 speed grade (None on iCE40).
    clock_mhz : float
        The board oscillator.
    default_mhz : float
        The core clock a flow aims for when not told otherwise.
    logic_cells : int
        iCE40 logic cells (LUT4 + FF) or ECP5 LUT4s.
    multipliers : int
        Hard multipliers: iCE40 SB_MAC16 (16x16) or ECP5 MULT18X18D (18x18).
    multiplier_bits : int
        Operand width of one hard multiplier.
    bram_bits : int
        Block RAM initialised at configuration (iCE40 EBR, ECP5 DP16KD).
    spram_bits : int
        Single-port RAM that comes up uninitialised (iCE40 UP5K SPRAM), 0 elsewhere.
    constraints : str
        The constraint file under ``constraints/``.
    clock_port, rx_port, tx_port : str
        Top-level port names, as the constraint file spells them (the UART ports from the
        FPGA's point of view: it receives on ``rx_port``).
    led_ports : tuple of (str, int)
        LED ports and their widths.
    leds_active_low : bool
    tie_high : tuple of str
        Outputs held high (ULX3S: the ESP32's GPIO0, so it cannot reset the FPGA).
    """

    name: str
    family: str
    device: str
    nextpnr_device: str
    package: str
    speed: int | None
    clock_mhz: float
    default_mhz: float
    logic_cells: int
    multipliers: int
    multiplier_bits: int
    bram_bits: int
    spram_bits: int
    constraints: str
    clock_port: str
    rx_port: str
    tx_port: str
    led_ports: tuple[tuple[str, int], ...]
    leds_active_low: bool
    tie_high: tuple[str, ...] = ()


def _ulx3s(size: str, luts: int, multipliers: int, brams: int) -> Board:
    return Board(
        name=f"ulx3s-{size}f", family="ecp5", device=f"LFE5U-{size}F",
        nextpnr_device=f"{size}k", package="CABGA381", speed=6, clock_mhz=25.0,
        default_mhz=50.0, logic_cells=luts, multipliers=multipliers, multiplier_bits=18,
        bram_bits=brams * 18 * 1024, spram_bits=0, constraints="ulx3s.lpf",
        clock_port="clk_25mhz", rx_port="ftdi_txd", tx_port="ftdi_rxd",
        led_ports=(("led", 8),), leds_active_low=False, tie_high=("wifi_gpio0",))


#: Every supported board. Multiplier, RAM and cell counts are the ones nextpnr's
#: utilisation report gives for the part (ICESTORM_LC/DSP/RAM/SPRAM; TRELLIS_COMB,
#: MULT18X18D, DP16KD).
BOARDS: dict[str, Board] = {
    "icebreaker": Board(
        name="icebreaker", family="ice40", device="iCE40UP5K", nextpnr_device="up5k",
        package="sg48", speed=None, clock_mhz=12.0, default_mhz=30.0, logic_cells=5280,
        multipliers=8, multiplier_bits=16, bram_bits=30 * 4096, spram_bits=4 * 16384 * 16,
        constraints="icebreaker.pcf", clock_port="clk12", rx_port="rx", tx_port="tx",
        led_ports=(("led_r", 1), ("led_g", 1)), leds_active_low=True),
    "ulx3s-25f": _ulx3s("25", 24288, 28, 56),
    "ulx3s-45f": _ulx3s("45", 43848, 72, 108),
    "ulx3s-85f": _ulx3s("85", 83640, 156, 208),
}


@dataclass(frozen=True)
class SynthesisTarget:
    """The ``platform`` a synthesis flow elaborates for: which FPGA family's primitives
    components may instantiate (:class:`rtl.weight_store.WeightStore` maps onto iCE40
    SPRAM only when elaborated for ``family="ice40"``). Elaborated without one (simulation,
    the Verilog for cocotb), every component uses portable Amaranth constructs.

    Attributes
    ----------
    family : {"ice40", "ecp5"}
    """

    family: str

    def __post_init__(self) -> None:
        if self.family not in ("ice40", "ecp5"):
            raise ValueError(f"Family must be one of ice40, ecp5, not {self.family!r}")


def board_info(board: str) -> Board:
    """The :class:`Board` called ``board``.

    Raises
    ------
    ValueError
        If the board is not one of :data:`BOARDS`, naming those that are.
    """
    if board not in BOARDS:
        raise ValueError(f"Board must be one of {', '.join(BOARDS)}, not {board!r}")
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
    """A design with a UART on a board: PLL, reset until lock, pins.

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

    Members
    -------
    <clock_port> : In(1)
        The board oscillator (``clk12`` on iCEBreaker, ``clk_25mhz`` on ULX3S).
    <rx_port> : In(1)
        UART into the FPGA (``rx``; ULX3S ``ftdi_txd``, named from the FTDI side).
    <tx_port> : Out(1)
        UART out of the FPGA (``tx``; ULX3S ``ftdi_rxd``).
    <led ports> : Out(width)
        LED 0 lit once the PLL has locked, LED 1 while tx is low (sending), LED 2 (ULX3S)
        while rx is low (receiving); iCEBreaker: ``led_g`` locked, ``led_r`` sending.
    <tie_high> : Out(1)
        ULX3S ``wifi_gpio0``, held high.

    Every port is named as in the board's file under ``constraints/``.
    """

    def __init__(self, design, *, board: str, freq_mhz: float | None = None) -> None:
        self.info = board_info(board)
        for name in ("rx", "tx"):
            if not hasattr(design, name):
                raise TypeError(f"Design must have rx and tx members (a UART), not {design!r}")
        self.design = design
        self.pll = plan_pll(board, freq_mhz)
        info = self.info
        members = {info.clock_port: In(1), info.rx_port: In(1), info.tx_port: Out(1)}
        members.update({name: Out(width) for name, width in info.led_ports})
        members.update({name: Out(1) for name in info.tie_high})
        super().__init__(members)

    @property
    def freq_hz(self) -> float:
        """The clock the design runs at (what the PLL achieves), in Hz."""
        return self.pll.achieved_mhz * 1e6

    def port_names(self) -> list[str]:
        """Top-level port names as the synthesised netlist spells them (buses bit by bit)."""
        names = []
        for name, member in self.signature.members.items():
            width = member.shape.width if hasattr(member.shape, "width") else int(member.shape)
            names += [name] if width == 1 else [f"{name}[{i}]" for i in range(width)]
        return names

    def _pll(self, m: Module, clk_in: Signal, clk_out: Signal, locked: Signal) -> None:
        pll, info = self.pll, self.info
        if info.family == "ice40":
            # SB_PLL40_PAD: the oscillator's pin (35 on iCEBreaker) is the PLL's own pad.
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
        m = Module()
        info = self.info
        ports = {name: getattr(self, name) for name in self.signature.members}

        # The sync domain is defined here, so the exported top has no clk/rst ports: the
        # PLL output clocks everything inside.
        m.domains.sync = cd_sync = ClockDomain("sync")
        clk, locked = Signal(), Signal()
        self._pll(m, ports[info.clock_port], clk, locked)
        m.d.comb += cd_sync.clk.eq(clk)
        # Reset asserts at once while the PLL is unlocked and releases on a clock edge,
        # so no flip-flop leaves reset with a metastable neighbour.
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")

        m.submodules.design = design = self.design
        # The UART line is asynchronous to the PLL clock; idle is high, so the
        # synchroniser starts high and reset does not make it send a false start bit.
        m.submodules.rx_sync = FFSynchronizer(ports[info.rx_port], design.rx, init=1,
                                              reset_less=True)
        m.d.comb += ports[info.tx_port].eq(design.tx)

        status = [locked, ~design.tx, ~design.rx]
        leds = [bit for name, width in info.led_ports for bit in ports[name]]
        if info.family == "ice40":
            # iCEBreaker: green for locked, red while sending.
            leds = [ports["led_g"], ports["led_r"]]
        for i, led in enumerate(leds):
            value = status[i] if i < len(status) else Const(0, 1)
            m.d.comb += led.eq(~value if info.leds_active_low else value)
        for name in info.tie_high:
            m.d.comb += ports[name].eq(1)
        return m
