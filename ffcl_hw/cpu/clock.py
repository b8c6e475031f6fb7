"""The host CPU's name and nominal clock, read from /proc/cpuinfo.

Wall-clock time times the nominal clock estimates cycles; it is not a cycle count (turbo,
power states and, on a virtual machine, the host's scheduling all move it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuClock", "nominal_clock"]

_MODEL_GHZ = re.compile(r"@\s*([0-9]+(?:\.[0-9]+)?)\s*GHz", re.IGNORECASE)


@dataclass(frozen=True)
class CpuClock:
    """What is known of the host CPU's clock.

    Attributes
    ----------
    hz : float or None
        Nominal clock in Hz; None when /proc/cpuinfo gives none.
    source : str
        Where ``hz`` came from, e.g. ``/proc/cpuinfo "cpu MHz" (2299.998)``.
    cpu : str
        The "model name" line, or "unknown".
    """

    hz: float | None
    source: str
    cpu: str

    def to_dict(self) -> dict[str, object]:
        """JSON-ready fields."""
        return {"clock_hz": self.hz, "clock_source": self.source, "cpu_model": self.cpu}


def nominal_clock(cpuinfo: str | Path = "/proc/cpuinfo") -> CpuClock:
    """The nominal clock: "model name" ``@ x.xxGHz`` when present, else "cpu MHz".

    The first processor's entries are used. "cpu MHz" is the kernel's current-frequency
    figure; on the virtual machines this project runs on it is the host's fixed TSC rate.

    Parameters
    ----------
    cpuinfo : str or Path
        The file to read (tests pass a fixture).
    """
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError as error:
        return CpuClock(None, f"not available: cannot read {cpuinfo} ({error.strerror})",
                        "unknown")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields:
            fields[key] = value.strip()
    cpu = fields.get("model name", "unknown")
    match = _MODEL_GHZ.search(cpu)
    if match:
        return CpuClock(float(match.group(1)) * 1e9,
                        f'{cpuinfo} "model name" (@ {match.group(1)}GHz)', cpu)
    mhz = fields.get("cpu MHz")
    try:
        value = float(mhz) if mhz is not None else None
    except ValueError:
        value = None
    if value is not None and value > 0:
        return CpuClock(value * 1e6, f'{cpuinfo} "cpu MHz" ({mhz})', cpu)
    return CpuClock(None, f'not available: {cpuinfo} has neither "@ x.xxGHz" in '
                    '"model name" nor "cpu MHz"', cpu)
