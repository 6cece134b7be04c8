"""What an ELF file provides and needs: its SONAME and its DT_NEEDED libraries.

Shared by avalanche (which derives a package's providers from its files) and vessel (which
checks that a package's declared providers are backed by its files), so both read an ELF
file the same way. Providers use Serpent OS's spelling, with the machine in the name so that
a 32-bit library never satisfies a 64-bit need: ``soname(libgreet.so.1(x86_64))``.

The input may be hostile (vessel reads what a builder sent): any file that does not parse
as an ELF object with a dynamic section is "not an ELF library", never an error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

MAGIC = b"\x7fELF"

_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_386": "386",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "arm",
    "EM_RISCV": "riscv64",
    "EM_PPC64": "ppc64",
}
#: What pyelftools raises on malformed input (seen fuzzing it: its parse errors, overflows,
#: undecodable names, a failed internal assertion; the rest from its table lookups).
_MALFORMED = (ELFError, ValueError, KeyError, IndexError, AssertionError, OverflowError,
              struct.error)


@dataclass(frozen=True)
class ElfInfo:
    machine: str
    soname: str | None
    needed: tuple[str, ...]

    def soname_provider(self) -> str | None:
        return soname_dep(self.soname, self.machine) if self.soname else None

    def needed_providers(self) -> tuple[str, ...]:
        return tuple(soname_dep(lib, self.machine) for lib in self.needed)


def soname_dep(library: str, machine: str) -> str:
    """``soname(libx.so.1(x86_64))``."""
    return f"soname({library}({machine}))"


def read_elf(path: Path) -> ElfInfo | None:
    """The dynamic information of the file at ``path``, or ``None`` if it is not ELF."""
    with path.open("rb") as handle:
        return read_elf_stream(handle)


def read_elf_stream(handle: IO[bytes]) -> ElfInfo | None:
    """The dynamic information of a seekable binary stream, or ``None`` if it is not ELF."""
    if handle.read(4) != MAGIC:
        return None
    handle.seek(0)
    try:
        elf = ELFFile(handle)
        machine = _MACHINES.get(elf["e_machine"], str(elf["e_machine"]).lower())
        soname: str | None = None
        needed: list[str] = []
        for segment in elf.iter_segments():
            if not isinstance(segment, DynamicSegment):
                continue
            for tag in segment.iter_tags():
                if tag.entry.d_tag == "DT_NEEDED":
                    needed.append(str(getattr(tag, "needed", "")))
                elif tag.entry.d_tag == "DT_SONAME":
                    soname = str(getattr(tag, "soname", ""))
    except _MALFORMED:
        return None
    return ElfInfo(machine=machine, soname=soname, needed=tuple(needed))
