"""What a tree is made of and what it provides: the manifest of an environment.

Made of: the Debian packages dpkg records as installed (``var/lib/dpkg/status``) and the cairn
packages whose manifests sit in ``.cairn/packages/``. Provides: ``name(x)`` for each of those
packages, the providers every cairn package declares, and what the files provide, derived by
the very function that derives packages' provides (:func:`daemon.avalanche.split.file_provides`:
``binary()``, ``sysbinary()``, ``pkgconfig()``, ``soname()``).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from daemon.avalanche.split import file_provides
from daemon.package import MANIFEST_DIR, Manifest, name_provider

from .archive import Entry, Kind
from .declaration import Declaration
from .errors import BuildEnvError
from .manifest import EnvBase, EnvLayer, EnvManifest, EnvPackage, Origin

DPKG_STATUS = "var/lib/dpkg/status"


def dpkg_packages(root: Path) -> list[EnvPackage]:
    """The packages dpkg has installed in ``root`` (none when it has no dpkg database)."""
    try:
        text = (root / DPKG_STATUS).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found: list[EnvPackage] = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "\t") and ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
        if fields.get("status", "").endswith(" installed") and "package" in fields:
            found.append(EnvPackage(name=fields["package"], version=fields.get("version", ""),
                                    origin=Origin.DEBIAN))
    return sorted(found, key=lambda p: p.name)


def cairn_packages(root: Path) -> list[Manifest]:
    """The manifests of the cairn packages unpacked into ``root``."""
    directory = root / MANIFEST_DIR
    if not directory.is_dir():
        return []
    manifests = []
    for path in sorted(directory.glob("*.json")):
        try:
            manifests.append(msgspec.json.decode(path.read_bytes(), type=Manifest))
        except msgspec.DecodeError as exc:
            raise BuildEnvError(f"package manifest {path} is malformed: {exc}") from exc
    return manifests


def derive(root: Path, entries: list[Entry], decl: Declaration, *,
           sources: list[str], layer: EnvLayer | None,
           inherited: EnvBase | None = None) -> EnvManifest:
    """The manifest of the tree at ``root`` (``entries`` from :func:`.archive.scan`);
    ``inherited``: the Debian base of the parent environment it was made from."""
    debian = dpkg_packages(root)
    cairn = cairn_packages(root)
    packages = debian + [EnvPackage(name=m.name, version=f"{m.version}-{m.release}-"
                                    f"{m.build_release}", origin=Origin.CAIRN) for m in cairn]
    paths = [e.path for e in entries if e.kind is not Kind.DIR]
    provides, needed = file_provides(paths, root)
    provides |= {name_provider(p.name) for p in packages}
    for m in cairn:
        provides |= set(m.provides)
    base = inherited
    if decl.base is not None:
        base = EnvBase(suite=decl.base.suite, variant=decl.base.variant, sources=sources)
    return EnvManifest(
        name=decl.name,
        arch=decl.arch,
        declaration=decl.key(),
        source_date_epoch=decl.source_date_epoch,
        base=base,
        layer=layer,
        packages=sorted(packages, key=lambda p: (p.origin, p.name)),
        provides=sorted(provides),
        unresolved=sorted(needed - provides),
        files=sum(1 for e in entries if e.kind is Kind.FILE),
        size=sum(e.size for e in entries),
    )
