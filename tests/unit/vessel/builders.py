"""Build real package archives (honest and hostile) and serve them over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import zstandard
from aiohttp import web

from daemon.package import FileEntry, FileType, Manifest, archive_name, manifest_path
from events.payloads import Artefact, BuildDone, Outcome

Tweak = Callable[[tarfile.TarFile], None]


@dataclass
class Pkg:
    name: str
    version: str = "1.0"
    release: int = 1
    build_release: int = 1
    arch: str = "x86_64"
    source: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    #: Modes of some files (default 0o644), in the archive and the manifest alike.
    modes: dict[str, int] = field(default_factory=dict)
    #: What the manifest declares beyond ``name(<name>)``.
    provides: list[str] = field(default_factory=list)
    #: Add hostile members to the tar after the honest ones.
    tweak: Tweak | None = None
    #: Change the manifest before it is written (a lying builder).
    manifest_fields: dict[str, object] = field(default_factory=dict)
    #: The build environment it was built in (digest); ``None``: the host, not hermetic.
    environment: str | None = None

    @property
    def filename(self) -> str:
        return archive_name(self.name, self.version, self.release, self.build_release, self.arch)


def manifest_of(pkg: Pkg) -> Manifest:
    entries = [FileEntry(path=p, type=FileType.FILE, mode=pkg.modes.get(p, 0o644), size=len(d),
                         sha256=hashlib.sha256(d).hexdigest()) for p, d in pkg.files.items()]
    entries += [FileEntry(path=p, type=FileType.SYMLINK, mode=0o777, target=t)
                for p, t in pkg.symlinks.items()]
    fields: dict[str, object] = dict(
        name=pkg.name, version=pkg.version, release=pkg.release,
        build_release=pkg.build_release, arch=pkg.arch, source=pkg.source or pkg.name,
        summary=f"the {pkg.name} package", depends=[],
        provides=[f"name({pkg.name})", *pkg.provides],
        files=entries, environment=pkg.environment)
    fields.update(pkg.manifest_fields)
    return Manifest(**fields)  # type: ignore[arg-type]


def archive_bytes(pkg: Pkg) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = {str(parent) for p in [*pkg.files, *pkg.symlinks] for parent in Path(p).parents}
        for d in sorted(dirs - {"."}):
            _add_dir(tar, d)
        for path, data in pkg.files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), pkg.modes.get(path, 0o644)
            tar.addfile(info, io.BytesIO(data))
        for path, target in pkg.symlinks.items():
            info = tarfile.TarInfo(path)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
        manifest = msgspec.json.encode(manifest_of(pkg))
        info = tarfile.TarInfo(manifest_path(pkg.name))
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        if pkg.tweak is not None:
            pkg.tweak(tar)
    return zstandard.ZstdCompressor().compress(raw.getvalue())


def _add_dir(tar: tarfile.TarFile, path: str) -> None:
    info = tarfile.TarInfo(path)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def add_member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x",
               linkname: str = "", mode: int = 0o644) -> Tweak:
    def tweak(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = kind, linkname, mode
        if kind == tarfile.REGTYPE:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        else:
            tar.addfile(info)
    return tweak


class ArtefactServer:
    """A builder's artefact server on 127.0.0.1: files by name, with optional misbehaviour."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.status: dict[str, int] = {}
        self.delay_per_chunk = 0.0
        self.requests: list[str] = []
        self.port = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/artefacts/{name}"

    def add(self, pkg: Pkg, data: bytes | None = None) -> Artefact:
        blob = archive_bytes(pkg) if data is None else data
        self.files[pkg.filename] = blob
        return Artefact(name=pkg.name, filename=pkg.filename, url=self.url(pkg.filename),
                        sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append(name)
        if name in self.status:
            return web.Response(status=self.status[name], text="nope")
        data = self.files.get(name)
        if data is None:
            raise web.HTTPNotFound()
        response = web.StreamResponse()
        response.content_length = len(data)
        await response.prepare(request)
        for start in range(0, len(data), 16384):
            if self.delay_per_chunk:
                await asyncio.sleep(self.delay_per_chunk)
            await response.write(data[start:start + 16384])
        await response.write_eof()
        return response

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ArtefactServer]:
        app = web.Application()
        app.router.add_get("/artefacts/{name}", self._handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        try:
            yield self
        finally:
            await runner.cleanup()


def build_done(artefacts: list[Artefact], *, source: str, version: str = "1.0",
               release: int = 1, build_release: int = 1, arch: str = "x86_64",
               task_id: int = 1, channel: str = "volatile",
               environment: str | None = None) -> BuildDone:
    return BuildDone(task_id=task_id, attempt=1, builder="b1", source=source, version=version,
                     release=release, build_release=build_release, arch=arch,
                     outcome=Outcome.SUCCESS, artefacts=artefacts, channel=channel,
                     environment=environment)
