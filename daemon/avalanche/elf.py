"""What an ELF file provides and needs: its SONAME and its DT_NEEDED libraries.

Providers use Serpent OS's spelling, with the machine in the name so that a 32-bit library
never satisfies a 64-bit need: ``soname(libgreet.so.1(x86_64))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

_MACHINES = {
    "EM_X86_64": "x86_64",
    "EM_386": "386",
    "EM_AARCH64": "aarch64",
    "EM_ARM": "arm",
    "EM_RISCV": "riscv64",
    "EM_PPC64": "ppc64",
}


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
    """The dynamic information of ``path``, or ``None`` if it is not an ELF file."""
    with path.open("rb") as handle:
        if handle.read(4) != b"\x7fELF":
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
        except (ELFError, ValueError, KeyError):
            return None
    return ElfInfo(machine=machine, soname=soname, needed=tuple(needed))
