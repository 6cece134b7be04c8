"""Who a sandboxed build runs as on the host, and where its tree lives so that user can reach it.

A user namespace made by root maps the build's user to host uid 0, which still owns root's
files; so a builder running as root never lets a step keep that uid. Each build leases one host
uid from a configured range (``build_uid`` .. ``build_uid + build_uids - 1``, gid of the same
number, no supplementary groups) that belongs to no account. Only the build's processes switch
to it, and bubblewrap then makes the user namespace as that user.

One uid per build, host-wide: a lock file per uid (``flock``, released by the kernel when the
builder dies, however it dies) under a root-only directory, so two builders of one host never
share a uid. Sharing would let one build's processes count against another's process limit
(``RLIMIT_NPROC`` is per uid) and open the other's tree. A uid that has an account or still
runs a process is skipped.

The build tree is handed to its uid (owner, mode 0700) once the builder has written the
sources and dependencies into it, and the builder removes it before the uid goes back to the
pool. bubblewrap, running as that uid, must reach the tree to bind it: every directory above it
must let others through (``x``). A state directory under ``/root`` does not, so when
``<root>/builds`` cannot be reached the trees go to ``/var/tmp/cairn-builds`` instead
(root-owned, mode 0711), or wherever ``work_dir`` says. A tree is named
``<digest of the builder's root>-<build id>``, so builders can share a directory and each can
find (and remove, at start-up) what an earlier run of its own left behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import hashlib
import os
import pwd
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from events.payloads import Outcome

from .errors import BuildError

#: Where trees go when the builder's own ``builds/`` is out of the build users' reach.
SHARED_WORK_DIR = Path("/var/tmp/cairn-builds")  # noqa: S108  (root-owned, checked: secure_dir)
_HIGHEST_ID = 2**32 - 2  # (uid_t)-1 means "no change" to the kernel


class SandboxUnavailable(BuildError):
    """The builder cannot arrange the sandbox a build must run in; it refuses to build."""

    outcome = Outcome.INFRASTRUCTURE


@dataclass(frozen=True)
class BuildIdentity:
    """The unprivileged host user a build runs as."""

    uid: int
    gid: int


def check_range(first: int, count: int) -> None:
    """Refuse a uid range that includes root, ``nobody``-style overflow ids or ``-1``."""
    if count < 1 or first < 1000 or first + count - 1 > _HIGHEST_ID:
        raise SandboxUnavailable(
            f"build uid range {first}..{first + count - 1} is unusable: it must be at least "
            f"one uid, start at 1000 or above and end below {_HIGHEST_ID + 1}; set build_uid "
            "and build_uids to a range no account uses"
        )


def secure_dir(path: Path, mode: int) -> Path:
    """Create ``path`` (and parents) if missing; refuse it unless root owns it, it is a real
    directory and nobody else may write to it. Applies ``mode``."""
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022:
        raise SandboxUnavailable(
            f"{path} must be a directory owned by root that only root may write to "
            f"(it is mode {stat.filemode(st.st_mode)}, owner uid {st.st_uid}); remove it"
        )
    os.chmod(path, mode)
    return path


def _has_account(uid: int, gid: int) -> bool:
    for lookup, value in ((pwd.getpwuid, uid), (grp.getgrgid, gid)):
        try:
            lookup(value)
        except KeyError:
            continue
        return True
    return False


def _runs_processes(uid: int) -> bool:
    """Whether any process on the host belongs to ``uid`` (a leftover of a killed builder)."""
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    return True
            except OSError:  # the process ended while we looked
                continue
    return False


@contextlib.contextmanager
def lease(first: int, count: int, lock_dir: Path) -> Iterator[BuildIdentity]:
    """Hold one free uid of the range for the duration of the ``with`` block."""
    check_range(first, count)
    secure_dir(lock_dir, 0o700)
    for uid in range(first, first + count):
        fd = os.open(lock_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)  # fmt: skip
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                continue
            raise
        try:
            if _has_account(uid, uid) or _runs_processes(uid):
                continue
            yield BuildIdentity(uid=uid, gid=uid)
            return
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    raise SandboxUnavailable(
        f"every build uid of {first}..{first + count - 1} is in use by another build or "
        "belongs to an account; raise build_uids or move build_uid to a free range"
    )


def reachable(path: Path, identity: BuildIdentity) -> bool:
    """Whether ``identity`` may traverse every directory down to ``path`` (mode bits only)."""
    current = Path("/")
    for part in (*path.resolve().parts[1:], ""):
        try:
            st = current.stat()
        except OSError:
            return False
        if st.st_uid == identity.uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid == identity.gid:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return False
        if part:
            current = current / part
    return True


def trees_dir(root: Path, work_dir: Path | None, identity: BuildIdentity | None) -> Path:
    """The directory that holds the build trees (see the module docstring); made if missing."""
    if identity is None:
        path = work_dir or root / "builds"
        path.mkdir(parents=True, exist_ok=True)
        return path
    if work_dir is not None:
        path = secure_dir(work_dir, 0o711)
        if not reachable(path, identity):
            raise SandboxUnavailable(
                f"work_dir {path} cannot be reached by the build users: a directory above it "
                "does not let others through (x); choose a directory under one that does"
            )
        return path
    own = root / "builds"
    own.mkdir(parents=True, exist_ok=True, mode=0o711)
    if reachable(own, identity):
        return secure_dir(own, 0o711)
    return secure_dir(SHARED_WORK_DIR, 0o711)


def _owner_prefix(root: Path) -> str:
    """What the names of one builder's trees start with, wherever several builders share."""
    return hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16] + "-"


def _owner_marker(folder: Path, root: Path) -> Path:
    return folder / (_owner_prefix(root)[:-1] + ".owner")


def tree_path(root: Path, work_dir: Path | None, identity: BuildIdentity | None,
              build_id: str) -> Path:
    """Where the tree of build ``build_id`` of the builder at ``root`` goes. In a directory
    builders share, a marker names the builder's root, so that the trees of a builder whose
    root is gone can be recognised as nobody's (:func:`stale_trees`)."""
    folder = trees_dir(root, work_dir, identity)
    if folder != root / "builds":
        marker = _owner_marker(folder, root)
        if not marker.exists():
            part = marker.with_name(f".{marker.name}.{secrets.token_hex(8)}")
            part.write_text(str(root.resolve()) + "\n", encoding="utf-8")
            os.replace(part, marker)
    return folder / (_owner_prefix(root) + build_id)


def stale_trees(root: Path, work_dir: Path | None, identity: BuildIdentity | None) -> list[Path]:
    """What earlier runs left in the trees directory: this builder's trees (a builder killed
    mid-build leaves its tree), and in a shared directory the trees and marker of any builder
    whose root no longer exists. Call only while this builder has no build running."""
    prefixes = [_owner_prefix(root)]
    folder = trees_dir(root, work_dir, identity)
    found: list[Path] = []
    for marker in folder.glob("*.owner"):
        try:
            owner = Path(marker.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError):
            continue
        if not owner.exists():
            prefixes.append(marker.name.removesuffix(".owner") + "-")
            found.append(marker)
    found += [p for p in folder.iterdir()
              if p.name.startswith(tuple(prefixes)) and not p.is_symlink()]  # fmt: skip
    return sorted(found)


def hand_over(tree: Path, identity: BuildIdentity) -> None:
    """Give the build tree to the build's user (links themselves, never their targets)."""
    os.chown(tree, identity.uid, identity.gid)
    os.chmod(tree, 0o700)
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), identity.uid, identity.gid,
                     follow_symlinks=False)  # fmt: skip
