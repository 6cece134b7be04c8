"""The sandbox a build step runs in: an unprivileged user in namespaces of its own.

How a step is started (:meth:`Sandbox.command`, :meth:`Sandbox.spawn_options`):

1. When the builder runs as root, the child process first switches to the build's leased host
   uid/gid with no supplementary groups (:mod:`.identity`). Then ``prlimit`` lowers
   ``RLIMIT_NPROC`` to ``max_processes`` (hard and soft): the kernel refuses a fork or a thread
   once that uid has that many. A leased uid is the build's alone, so the limit is per build;
   a builder that is not root runs builds as its own uid, so there it bounds all its builds
   together (its own threads count, but are never refused: the limit is not theirs).
2. bubblewrap, running as that unprivileged user, makes new user, mount, PID, network, IPC,
   UTS and (when the kernel has them) cgroup namespaces. The step's user is the same uid inside
   and out; every capability is dropped (``--cap-drop ALL``), no_new_privs is set, every mount
   is ``nosuid``, and ``--disable-userns`` stops the step making a user namespace of its own,
   so nothing can give a capability back.
3. The view: a private tmpfs as ``/`` where every top-level entry of ``root`` (the host's
   ``/`` unless a build environment is given) is bound read-only, symlinks recreated; fresh
   ``/dev``, ``/proc`` (of the new PID namespace), ``/tmp`` and ``/run`` (the host's sockets
   stay out of sight); each :class:`Bind` at its ``inside`` path (the build tree at
   :data:`BUILD_INSIDE`), each ``hidden`` path covered with an empty tmpfs, and then ``/``
   itself remounted read-only.

A build sees its tree at ``/build`` whatever the host path: the host path of a tree under a
root-only directory cannot exist inside a view the build user assembles, and a build
environment's root does not have it either. :meth:`Sandbox.inside` translates a host path of
a bound directory into the path the step sees (macros, environment, working directory).

:func:`probe` starts the very same sandbox once before a build and reads the step's
``/proc/self/status`` and ``uid_map``; a build is refused (``infrastructure``, with what to
fix) unless capabilities are all zero, no_new_privs is set, the command is in a user namespace
and its uid is not 0. (That the uid is not host root either is the kernel's doing: the child
switched to the leased uid before it ran bubblewrap, and a builder that is root never gets a
sandbox without a leased uid.)

``Sandbox(bwrap=None)`` runs a command as it is, as the builder's user, with host paths:
only a configuration that names ``sandbox = "none"`` gets it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .identity import BuildIdentity, SandboxUnavailable, reachable

#: Where a build sees its own tree.
BUILD_INSIDE = Path("/build")
#: Top-level entries of the root that the sandbox makes afresh rather than binding.
_FRESH = {"dev": "--dev", "proc": "--proc", "tmp": "--tmpfs", "run": "--tmpfs"}
_PROBE_TIMEOUT_S = 60.0
_CAPS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


@dataclass(frozen=True)
class Bind:
    """A host directory the build sees at ``inside``, writable unless ``writable`` is false."""

    host: Path
    inside: Path
    writable: bool = True


@dataclass(frozen=True)
class Sandbox:
    """How to confine a command; see the module docstring. ``bwrap=None``: not at all."""

    bwrap: str | None
    binds: tuple[Bind, ...] = ()
    #: The directory shown read-only as ``/``: the host's, or a build environment's root.
    root: Path = Path("/")
    #: Paths of ``root`` to cover with an empty tmpfs (the builder's state, say).
    hidden: tuple[Path, ...] = ()
    #: The host user the command runs as; ``None`` keeps the builder's (not root: see probe).
    identity: BuildIdentity | None = None
    #: ``RLIMIT_NPROC`` for the command (``prlimit`` must be given with it).
    max_processes: int | None = None
    prlimit: str | None = None
    #: Share the host's network (a recipe's ``networking: true`` on a builder that allows it);
    #: otherwise the command has a network namespace of its own with only loopback.
    network: bool = False

    def inside(self, path: Path) -> Path:
        """``path`` (on the host, under a bind) as the sandboxed command sees it."""
        if self.bwrap is None:
            return path
        for bind in self.binds:
            if path == bind.host or bind.host in path.parents:
                return bind.inside / path.relative_to(bind.host)
        raise ValueError(f"{path} is not inside any directory bound into the sandbox")

    def command(self, argv: list[str], cwd: Path) -> list[str]:
        """The command line that runs ``argv`` in ``cwd`` (a path as seen inside)."""
        if self.bwrap is None:
            return list(argv)
        args = [self.bwrap, *self._view(), *self._confinement(), "--chdir", str(cwd), "--",
                *argv]  # fmt: skip
        if self.max_processes is not None:
            if self.prlimit is None:
                raise SandboxUnavailable("prlimit (util-linux) is needed to bound the "
                                         "processes of a build; install util-linux")  # fmt: skip
            limit = self.max_processes
            args = [self.prlimit, f"--nproc={limit}:{limit}", "--", *args]
        return args

    def spawn_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`subprocess.Popen`: the user switch, before exec."""
        if self.identity is None:
            return {}
        return {"user": self.identity.uid, "group": self.identity.gid, "extra_groups": []}

    def _view(self) -> list[str]:
        args: list[str] = []
        for name in sorted(os.listdir(self.root)):
            source, dest = self.root / name, f"/{name}"
            if name in _FRESH:
                args += [_FRESH[name], dest]
            elif source.is_symlink():
                args += ["--symlink", os.readlink(source), dest]
            elif source.is_dir() or source.is_file():
                args += ["--ro-bind", str(source), dest]
        for name in sorted(set(_FRESH) - set(os.listdir(self.root))):
            args += [_FRESH[name], f"/{name}"]
        for path in sorted(set(self.hidden)):
            if any(other in path.parents for other in self.hidden):
                continue  # covered already
            on_root = self.root / path.relative_to("/")
            if on_root.is_dir() and self._reaches(on_root):
                args += ["--tmpfs", str(path)]
        for bind in self.binds:
            args += ["--bind" if bind.writable else "--ro-bind", str(bind.host), str(bind.inside)]
        return [*args, "--remount-ro", "/"]

    def _reaches(self, path: Path) -> bool:
        if self.identity is None:
            return os.access(path, os.X_OK)
        return reachable(path, self.identity)

    def _confinement(self) -> list[str]:
        net = [] if self.network else ["--unshare-net"]
        return ["--unshare-user", "--disable-userns", "--unshare-pid", *net,
                "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL",
                "--die-with-parent", "--new-session"]  # fmt: skip


def find_bwrap() -> str | None:
    """The bubblewrap binary if installed."""
    return shutil.which("bwrap")


def find_prlimit() -> str | None:
    """util-linux's prlimit if installed."""
    return shutil.which("prlimit") or (
        "/usr/bin/prlimit" if os.access("/usr/bin/prlimit", os.X_OK) else None
    )


_HINT = (
    "the sandbox needs bubblewrap 0.8 or later and unprivileged user namespaces "
    "(sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone = 1 where it "
    "exists, kernel.apparmor_restrict_unprivileged_userns = 0 on Ubuntu)"
)


def probe(sandbox: Sandbox, env: dict[str, str]) -> None:
    """Start ``sandbox`` once and check what its command gets; raise SandboxUnavailable."""
    if sandbox.bwrap is None:
        return
    argv = sandbox.command(["cat", "/proc/self/status", "/proc/self/uid_map"], Path("/"))
    try:
        done = subprocess.run(argv, cwd="/", env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=_PROBE_TIMEOUT_S, check=False,
                              **sandbox.spawn_options())  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailable(f"cannot start the sandbox: {exc}; {_HINT}") from exc
    err = done.stderr.decode("utf-8", "replace").strip()[-500:]
    if done.returncode != 0:
        raise SandboxUnavailable(
            f"cannot start the sandbox (status {done.returncode}: {err or 'no output'}); {_HINT}"
        )
    problems = sandbox_problems(done.stdout.decode("utf-8", "replace"))
    if problems:
        raise SandboxUnavailable(
            "the sandbox does not confine builds as it must (" + "; ".join(problems)
            + "): refusing to build; check the bubblewrap installation (it must not be setuid)"
        )


def sandbox_problems(report: str) -> list[str]:
    """What is wrong with a sandboxed process, from its ``/proc/self/status`` + ``uid_map``."""
    fields: dict[str, str] = {}
    maps: list[list[str]] = []
    for line in report.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
        elif len(line.split()) == 3:
            maps.append(line.split())
    problems = [f"{cap} is {fields.get(cap)!r}" for cap in _CAPS
                if fields.get(cap, "x").strip("0") != ""]  # fmt: skip
    if fields.get("NoNewPrivs") != "1":
        problems.append("no_new_privs is not set")
    if not maps or any(count == "4294967295" for _inner, _outer, count in maps):
        problems.append("the command is not in a user namespace of its own")
    uids = fields.get("Uid", "0").split()
    if not uids or "0" in uids:
        problems.append("the command runs as uid 0")
    return problems
