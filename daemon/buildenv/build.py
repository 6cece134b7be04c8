"""``declaration -> <digest>.tar.zst + <digest>.json``: building an environment.

Steps: the Debian base (:mod:`.bootstrap`) into a staging directory, the channel layer on top
(:mod:`.layer`), the manifest derived from the finished tree (:mod:`.contents`), then the
reproducible archive (:mod:`.archive`). The archive and its record are written under
temporary names and renamed into ``out_dir`` when complete; the staging tree is removed.

What changes the digest: any byte of the tree (a package version on the mirror, a channel
package's new build, the declaration's packages, variant, excludes or ``source_date_epoch``),
the manifest (which also names the declaration's hash, the source lines and the layer's index
URL and generation), and the zstd level or library version. Not the build's time, host name,
user, or the order files were written in.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import archive, bootstrap, contents, layer
from .declaration import Declaration
from .errors import BuildEnvError
from .manifest import MANIFEST_MEMBER, EnvBase, EnvRecord, archive_name, encode, record_name


def _ignore(*_args: object) -> None:
    return None


@dataclass(frozen=True)
class Progress:
    """Where a build reports: a phase starts, a line of tool output, bytes packed."""

    phase: Callable[[str], None] = _ignore
    line: Callable[[str], None] = _ignore
    packed: Callable[[int, int], None] = _ignore


@dataclass(frozen=True)
class Built:
    record: EnvRecord
    archive: Path
    record_path: Path
    timings: dict[str, float] = field(default_factory=dict)


def build(decl: Declaration, out_dir: Path, *, cache_dir: Path, work_dir: Path | None = None,
          etc_apt: Path | None = None, timeout: float = 60.0,
          progress: Progress = Progress()) -> Built:
    """Build ``decl``; see the module docstring. ``cache_dir`` keeps downloaded packages."""
    timings: dict[str, float] = {}
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".buildenv-", dir=work_dir or out_dir))
    root = staging / "root"
    try:
        sources: list[str] = []
        started = time.monotonic()
        inherited = None
        if decl.base is not None:
            sources = bootstrap.sources_for(decl.base, etc_apt)
            progress.phase(f"debian {decl.base.suite} ({decl.base.variant}) from "
                           f"{'; '.join(sources)}")
            bootstrap.run(decl, root, sources, line=progress.line)
        elif decl.parent is not None:
            progress.phase(f"parent environment {decl.parent}")
            inherited = _from_parent(Path(decl.parent), root)
            sources = inherited.sources if inherited is not None else []
        else:
            root.mkdir()
        timings["base"] = time.monotonic() - started
        env_layer = None
        if decl.layer is not None:
            started = time.monotonic()
            progress.phase(f"layer {', '.join(decl.layer.packages)} from {decl.layer.index}")
            env_layer = layer.install(decl.layer, root, cache_dir, decl.arch, timeout=timeout,
                                      line=progress.line)
            timings["layer"] = time.monotonic() - started
        started = time.monotonic()
        progress.phase("manifest: packages and provides")
        entries = archive.scan(root)
        manifest = contents.derive(root, entries, decl, sources=sources, layer=env_layer,
                                   inherited=inherited)
        timings["manifest"] = time.monotonic() - started
        started = time.monotonic()
        progress.phase(f"packing {manifest.files} files, {manifest.size / 1e6:.0f} MB")
        tmp_archive = staging / "env.tar.zst"
        digest = archive.pack(root, entries, manifest, tmp_archive, progress=progress.packed)
        timings["pack"] = time.monotonic() - started
        record = EnvRecord(digest=digest, size=tmp_archive.stat().st_size, manifest=manifest)
        final = out_dir / archive_name(digest)
        os.replace(tmp_archive, final)
        record_path = out_dir / record_name(digest)
        tmp_record = out_dir / f".{record_path.name}.{secrets.token_hex(4)}"
        tmp_record.write_bytes(encode(record))
        os.replace(tmp_record, record_path)
        progress.phase(f"environment {decl.name}: sha256:{digest} ({record.size / 1e6:.1f} MB)")
        return Built(record, final, record_path, timings)
    except OSError as exc:
        raise BuildEnvError(f"building environment {decl.name} failed: {exc}") from exc
    finally:
        remove_tree(staging)


def _from_parent(parent: Path, root: Path) -> EnvBase | None:
    """Unpack the parent environment into ``root``, writable for the layer, without its
    manifest (the new one replaces it); returns the Debian base it was made from."""
    made = archive.unpack(parent, root)
    archive.make_writable(root)
    (root / MANIFEST_MEMBER).unlink(missing_ok=True)
    return made.base


def remove_tree(path: Path) -> None:
    """Remove a staging tree that mmdebstrap (maybe as root) made; read-only bits included.

    An mmdebstrap killed mid-run (SIGKILL, or SIGPIPE when whoever read its output died)
    leaves ``proc``, ``sys`` and ``dev/pts`` mounted inside the tree, and removing files
    under a read-only ``sysfs`` fails; so those mounts are detached first."""
    if path.exists():
        unmount_under(path)
        archive.make_writable(path)
        shutil.rmtree(path, ignore_errors=True)


def mounts_under(path: Path, mountinfo: str | None = None) -> list[Path]:
    """Mount points at or below ``path``, deepest first (``/proc/self/mountinfo``'s fifth
    field, with its octal escapes for spaces and the like undone)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return []
    top = os.path.realpath(path)
    found = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if point == top or point.startswith(top.rstrip("/") + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_under(path: Path) -> None:
    """Detach (lazily) whatever is mounted below ``path``; only root can, and only root's
    mmdebstrap mounts anything."""
    if os.geteuid() != 0:
        return
    for point in mounts_under(path):
        subprocess.run(["umount", "--lazy", str(point)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
