"""The build environment ``cairn up`` builds in: made once from the bundled declaration,
cached, reused; or the host's own system, labelled not hermetic, when it cannot be made.

``--environment`` names another one (a declaration, an archive, or the digest of one made
before); ``--host`` skips it. The environment made from a declaration is kept under
``$CAIRN_CACHE_DIR/environments/up/<key>/`` (``~/.cache/cairn/...``), keyed by the
declaration's content and the apt source lines it resolves to: a second run finds it there
and makes nothing. Before making one, :func:`preflight` checks what making it and building in
it need (mmdebstrap, bubblewrap, root or user namespaces with subordinate ids, a reachable
mirror) and says which is missing and how to get it; the bundled default then falls back to
the host, an environment the user named is an error.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import shutil
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from daemon.buildenv import archive, bootstrap, declaration
from daemon.buildenv.build import build
from daemon.buildenv.cli import Reporter, bundled_declaration, default_out_dir
from daemon.buildenv.errors import BuildEnvError
from daemon.buildenv.manifest import EnvRecord, archive_name, decode_record
from daemon.paths import default_cache_dir
from events.errors import CairnError

#: Seconds the mirror may take to answer the probe before making an environment.
PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class UpEnvironment:
    """An environment archive on this machine and its record."""

    archive: Path
    record: EnvRecord

    @property
    def digest(self) -> str:
        return self.record.digest

    @property
    def name(self) -> str:
        return self.record.manifest.name


@dataclass(frozen=True)
class Chosen:
    """What ``cairn up`` builds in: ``environment``, or the host (``None``) because of
    ``why`` (the user asked, or what making one here lacks)."""

    environment: UpEnvironment | None
    why: str = ""


class Unavailable(CairnError):
    """An environment cannot be made or used on this machine; the text says why and what to
    install or change."""


def up_cache() -> Path:
    return default_cache_dir() / "environments" / "up"


def choose(spec: str | None, console: Console) -> Chosen:
    """The environment for ``--environment spec`` (default: the bundled declaration). Only
    the bundled default falls back to the host; a named one that cannot be had raises
    :class:`CairnError`."""
    try:
        return Chosen(resolve(spec, console))
    except CairnError as exc:
        if spec is not None:
            raise
        return Chosen(None, str(exc))


def resolve(spec: str | None, console: Console) -> UpEnvironment:
    """A declaration (made here, or found made before), an archive, or a digest of one made
    before by ``cairn up`` or ``cairn buildenv build``."""
    path = Path(spec) if spec is not None else bundled_declaration()
    if spec is None or path.suffix == ".toml":
        return from_declaration(path, console)
    if path.name.endswith(".tar.zst"):
        return from_archive(path)
    return from_digest(spec)


def from_archive(path: Path) -> UpEnvironment:
    if not path.is_file():
        raise Unavailable(f"there is no environment archive {path}")
    record = path.with_name(path.name.removesuffix(".tar.zst") + ".json")
    if record.is_file():
        found = decode_record(record.read_bytes(), what=str(record))
        if found.size == path.stat().st_size and path.name == archive_name(found.digest):
            return UpEnvironment(path, found)
    manifest = archive.read_manifest(path)
    return UpEnvironment(path, EnvRecord(digest=archive.sha256_file(path),
                                         size=path.stat().st_size, manifest=manifest))


def from_digest(ref: str) -> UpEnvironment:
    """The archive of ``ref`` (a digest, or a unique prefix of 8 or more) made here before."""
    prefix = ref.removeprefix("sha256:").lower()
    found = {p.name: p for where in (up_cache(), default_out_dir())
             for p in where.glob("**/*.tar.zst") if p.name.startswith(prefix)}
    if len(prefix) < 8 or len(found) != 1:
        why = "matches several" if len(found) > 1 else "is not one made here"
        raise Unavailable(f"--environment {ref}: not a declaration (.toml), an archive "
                          f"(.tar.zst), or the digest of an environment made here ({why}; "
                          f"looked in {up_cache()} and {default_out_dir()})")
    return from_archive(next(iter(found.values())))


def cache_key(decl: declaration.Declaration) -> str:
    """The declaration and the source lines it resolves to on this host."""
    sources = bootstrap.sources_for(decl.base) if decl.base is not None else []
    return hashlib.sha256("\n".join([decl.key(), *sources]).encode()).hexdigest()[:24]


def from_declaration(path: Path, console: Console) -> UpEnvironment:
    """The environment of the declaration at ``path``: the cached one, else made now with
    progress on ``console`` (after :func:`preflight`) and cached."""
    decl = declaration.load(path)
    try:
        out = up_cache() / cache_key(decl)
    except BuildEnvError as exc:
        raise Unavailable(f"cannot find a Debian mirror for {decl.name}: {exc}") from exc
    with _locked(out):
        made = sorted(out.glob("*.json"))
        if made:
            return from_archive(out / archive_name(made[0].with_suffix("").name))
        preflight(decl)
        print(f"build environment {decl.name}: making it once (a few minutes), cached in "
              f"{out}", file=console.file, flush=True)
        with Reporter(console, prefix="build environment: ") as reporter:
            built = build(decl, out, cache_dir=default_cache_dir(), progress=reporter.hooks())
        return UpEnvironment(built.archive, built.record)


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One maker at a time per declaration (two ``cairn up`` on one machine)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out.with_name(out.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def preflight(decl: declaration.Declaration) -> None:
    """Raise :class:`Unavailable` saying what is missing to make ``decl`` and build in it."""
    if shutil.which("bwrap") is None:
        raise Unavailable("bubblewrap is not installed, and builds run in the environment "
                          "with it as their root: apt-get install bubblewrap")
    if decl.base is None:
        return
    if shutil.which(bootstrap.MMDEBSTRAP) is None:
        raise Unavailable(f"{bootstrap.MMDEBSTRAP} is not installed, and it makes the "
                          f"environment's Debian base: {bootstrap.INSTALL_HINT}")
    if os.geteuid() != 0:
        problem = unprivileged_problem()
        if problem is not None:
            raise Unavailable(problem)
    try:
        sources = bootstrap.sources_for(decl.base)
    except BuildEnvError as exc:
        raise Unavailable(f"cannot find a Debian mirror: {exc}") from exc
    probe_mirror(sources[0], decl.base.suite)


def unprivileged_problem(etc: Path = Path("/etc"), proc: Path = Path("/proc/sys")) -> str | None:
    """Why this (non-root) user may not make an environment, or ``None``: mmdebstrap's
    unshare mode needs user namespaces, newuidmap, and subordinate ids for the user."""
    for knob in ("kernel/unprivileged_userns_clone", "user/max_user_namespaces"):
        try:
            value = (proc / knob).read_text().strip()
        except OSError:
            continue
        if value == "0":
            return (f"not permitted: user namespaces are disabled ({proc / knob} is 0); run "
                    f"`cairn up` as root, or enable them: sysctl -w {knob.replace('/', '.')}=1")
    if shutil.which("newuidmap") is None:
        return ("not permitted without root: newuidmap is missing (mmdebstrap needs it to map "
                "subordinate ids): apt-get install uidmap")
    user = pwd.getpwuid(os.geteuid()).pw_name
    for name in ("subuid", "subgid"):
        try:
            lines = (etc / name).read_text().splitlines()
        except OSError:
            lines = []
        if not any(line.split(":", 1)[0] in (user, str(os.geteuid())) for line in lines):
            return (f"not permitted: {user} has no subordinate ids in {etc / name}, which "
                    f"mmdebstrap needs without root; run `cairn up` as root, or add a range: "
                    f"usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}")
    return None


def probe_mirror(line: str, suite: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Ask the mirror of the apt source ``line`` for the suite's Release file."""
    words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
    uri = words[1] if len(words) > 1 else ""
    if not uri.startswith(("http://", "https://")):
        return
    url = f"{uri.rstrip('/')}/dists/{suite}/Release"
    request = urllib.request.Request(url, method="HEAD")  # noqa: S310  (http(s) only)
    try:
        with urllib.request.urlopen(request, timeout=timeout):  # noqa: S310
            return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"cannot reach the Debian mirror {uri} ({reason}): making the "
                          "environment downloads its packages once; connect this machine "
                          "(or set a proxy: http_proxy), or name a reachable mirror in the "
                          "declaration's [base] mirror") from exc
