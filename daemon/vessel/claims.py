"""A package's ``provides`` must be backed by its own files, by the rule in
:mod:`daemon.provides` that avalanche derives them with.

Why: the index vessel signs is what builders and summit resolve dependencies against. A
builder that declares ``binary(vtool)`` or ``soname(libssl.so.3(x86_64))`` for a package that
holds no such file would otherwise have vessel vouch for a lie, and could win the provider
from the package that really has it.

Path rules (``binary()``, ``sysbinary()``, ``pkgconfig()``) are checked against the members
found on the first read of the archive. Only if the manifest claims a ``soname()`` that
they do not settle is the archive read a second time, and only its ELF members opened: each
is spooled (in memory up to a few MiB, else in vessel's own temporary directory beside the
archive) and its dynamic section read until every claim is backed. The archive has passed
every check of :mod:`daemon.vessel.archive` by then, so the second read is bounded too.

Functions here are synchronous and CPU-bound: call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterable

import zstandard

from daemon.elf import read_elf_stream
from daemon.package import MANIFEST_DIR, FileType
from daemon.provides import is_soname_provider, own_provides, path_provides
from daemon.vessel.archive import Inspected, Member
from daemon.vessel.errors import ImportRefused

_SPOOL_IN_MEMORY = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
#: How a claim of each kind is backed, for the refusal's reason (``{}``: the inner name).
_NEEDS = {
    "binary": "an executable file or symlink at usr/bin/{}",
    "sysbinary": "an executable file or symlink at usr/sbin/{}",
    "pkgconfig": "{}.pc in a pkg-config directory",
    "soname": "an ELF shared object with that DT_SONAME and machine",
}


def check_provides(inspected: Inspected, label: str) -> None:
    """Refuse the archive if its manifest claims a provider that none of its files backs."""
    manifest = inspected.manifest
    unbacked = set(manifest.provides) - backed_by_paths(manifest.name, inspected.members)
    if any(is_soname_provider(p) for p in unbacked):
        elves = [m for m in inspected.members if m.elf]
        unbacked -= elf_sonames(inspected, elves, {p for p in unbacked
                                                   if is_soname_provider(p)})
    if unbacked:
        listed = "; ".join(f"{p} (needs {_needs(p)})" for p in sorted(unbacked)[:5])
        more = f" and {len(unbacked) - 5} more" if len(unbacked) > 5 else ""
        raise ImportRefused(f"package {manifest.name} declares providers that no file in it "
                            f"backs: {listed}{more}", artefact=label)


def backed_by_paths(name: str, members: Iterable[Member]) -> set[str]:
    """The package's own names and what its members back by path, type and mode."""
    backed = set(own_provides(name))
    for member in members:
        if not member.path.startswith(MANIFEST_DIR + "/"):
            backed |= path_provides(member.path, member.type, member.mode)
    return backed


def elf_sonames(inspected: Inspected, elves: list[Member], wanted: set[str]) -> set[str]:
    """Which of ``wanted`` (``soname()`` providers) the ELF members back.

    Reads the archive again, opening only ``elves``; stops once every wanted one is found.
    """
    paths = {m.path for m in elves if m.type is FileType.FILE}
    found: set[str] = set()
    if not paths:
        return found
    with inspected.path.open("rb") as raw, \
            zstandard.ZstdDecompressor().stream_reader(raw) as plain, \
            tarfile.open(fileobj=plain, mode="r|") as tar:
        for info in tar:
            if _normal(info.name) not in paths:
                continue
            stream = tar.extractfile(info)
            if stream is None:
                continue
            with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, mode="w+b",
                                               dir=str(inspected.path.parent)) as spool:
                while chunk := stream.read(_CHUNK):
                    spool.write(chunk)
                spool.seek(0)
                elf = read_elf_stream(spool)
            provider = elf.soname_provider() if elf is not None else None
            if provider in wanted:
                found.add(provider)
                if found == wanted:
                    break
    return found


def _normal(name: str) -> str:
    """A member name as :mod:`daemon.vessel.archive` records it (no ``.`` or empty parts)."""
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def _needs(provider: str) -> str:
    kind, _, rest = provider.partition("(")
    if kind not in _NEEDS or not rest.endswith(")"):
        return "nothing vessel can check: only the package's name and files back a provider"
    return _NEEDS[kind].format(rest[:-1])
