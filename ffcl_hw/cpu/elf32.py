"""Just enough of ELF32 (little endian) to load a bare-metal RV32 program: its loadable
segments and its symbol table."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Elf32", "Segment"]

_PT_LOAD = 1
_SHT_SYMTAB = 2


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment: ``data`` at ``address``, zero-filled up to ``size`` bytes."""

    address: int
    data: bytes
    size: int


class Elf32:
    """A parsed little-endian ELF32 file.

    Attributes
    ----------
    entry : int
    machine : int
        e_machine (243 for RISC-V).
    segments : list of Segment
    symbols : dict of str to (address, size)
    """

    def __init__(self, path: str | Path):
        raw = Path(path).read_bytes()
        if raw[:4] != b"\x7fELF" or raw[4] != 1 or raw[5] != 1:
            raise ValueError(f"{path} is not a little-endian ELF32 file")
        (_, self.machine, _, self.entry, phoff, shoff, _, _, phentsize, phnum, shentsize,
         shnum, _) = struct.unpack_from("<HHIIIIIHHHHHH", raw, 16)
        self.segments: list[Segment] = []
        for i in range(phnum):
            (p_type, offset, vaddr, _, filesz, memsz, _, _) = struct.unpack_from(
                "<IIIIIIII", raw, phoff + i * phentsize)
            if p_type == _PT_LOAD and memsz:
                self.segments.append(Segment(vaddr, raw[offset:offset + filesz], memsz))
        sections = [struct.unpack_from("<IIIIIIIIII", raw, shoff + i * shentsize)
                    for i in range(shnum)]
        self.symbols: dict[str, tuple[int, int]] = {}
        for _, sh_type, _, _, offset, size, link, _, _, entsize in sections:
            if sh_type != _SHT_SYMTAB:
                continue
            strtab_offset = sections[link][4]
            for j in range(size // entsize):
                name, value, sym_size, _, _, _ = struct.unpack_from(
                    "<IIIBBH", raw, offset + j * entsize)
                end = raw.index(b"\0", strtab_offset + name)
                label = raw[strtab_offset + name:end].decode()
                if label:
                    self.symbols[label] = (value, sym_size)

    def symbol(self, name: str) -> int:
        """Address of symbol ``name``.

        Raises
        ------
        KeyError
            Naming the missing symbol.
        """
        if name not in self.symbols:
            raise KeyError(f"symbol {name!r} is not in the ELF file")
        return self.symbols[name][0]
