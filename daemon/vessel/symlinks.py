"""Resolve a package's symlinks inside a model of the package, in time linear in its size.

Why a model: vessel never extracts an archive, yet must know that no chain of the package's
links leads outside the package root once it is unpacked. Links are followed as the kernel
follows them: component by component, a link's target relative to the directory holding it,
``..`` of the root is outside, at most :data:`MAX_HOPS` links followed for one path (the
kernel's ``MAXSYMLINKS``; beyond it the kernel answers ``ELOOP``).

Why linear: each link is resolved once and remembered (its canonical location and how many
links that took), so a chain of *n* links costs *n* resolutions, not one per path through
the chain. A link met again while it is still being resolved is a loop and is refused at
once, without walking it up to the hop limit. Nesting is bounded by the hop limit, so the
recursion is too.

A member stored beneath another member that is a symlink (``lib -> usr/lib`` and
``lib/x``) is refused: unpacking it would write through the link, and an honest package
never holds one (a builder lists a linked directory as the link alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from events.errors import CairnError

#: Most links followed while resolving one path (the kernel's limit).
MAX_HOPS = 40


class SymlinkRefused(CairnError):
    """Why a package's links cannot be unpacked safely; ``str()`` names the link.

    Internal to vessel's archive check, which turns it into an ``ImportRefused``.
    """


@dataclass(frozen=True)
class _Resolved:
    parts: tuple[str, ...]
    hops: int


@dataclass
class SymlinkModel:
    """The package's symlinks (``path -> target``, paths relative and normalised).

    ``steps`` counts path components walked, so a caller (a test, a benchmark) can see that
    the work grows with the package, not with the number of paths through its links.
    """

    links: Mapping[str, str]
    steps: int = 0
    _done: dict[str, _Resolved] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)

    def check(self, paths: list[str]) -> None:
        """Refuse any member under a link, and any link that escapes, loops or is too deep."""
        for path in paths:
            parts = path.split("/")
            for end in range(1, len(parts)):
                self.steps += 1
                prefix = "/".join(parts[:end])
                if prefix in self.links:
                    raise SymlinkRefused(f"member {path!r} lies beneath symlink {prefix!r}: "
                                         "unpacking it would write through the link")
        for link in self.links:
            self._link(link, 0)

    def _link(self, link: str, depth: int) -> _Resolved:
        """Where ``link`` leads (canonical parts) and how many links that follows."""
        known = self._done.get(link)
        if known is not None:
            return known
        target = self.links[link]
        if link in self._active:
            raise SymlinkRefused(f"symlink {link!r} -> {target!r} is part of a symlink loop")
        if depth >= MAX_HOPS:
            raise SymlinkRefused(f"symlink {link!r} -> {target!r} is reached through more "
                                 f"than {MAX_HOPS} symlinks")
        if not target or target.startswith("/"):
            raise SymlinkRefused(f"symlink {link!r} points to {target!r}: symlinks must be "
                                 "relative and stay inside the package")
        self._active.add(link)
        parent = link.split("/")[:-1]
        parts, hops = self._walk(link, parent, target, depth + 1)
        self._active.discard(link)
        hops += 1
        if hops > MAX_HOPS:
            raise SymlinkRefused(f"symlink {link!r} -> {target!r} follows more than "
                                 f"{MAX_HOPS} symlinks")
        resolved = _Resolved(tuple(parts), hops)
        self._done[link] = resolved
        return resolved

    def _walk(self, link: str, base: list[str], target: str,
              depth: int) -> tuple[list[str], int]:
        """Follow ``target`` from the canonical directory ``base``, as the kernel would."""
        stack = list(base)
        hops = 0
        for part in target.split("/"):
            self.steps += 1
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    raise SymlinkRefused(f"symlink {link!r} -> {self.links[link]!r} points "
                                         "outside the package")
                stack.pop()
                continue
            here = "/".join([*stack, part])
            if here in self.links:
                inner = self._link(here, depth)
                hops += inner.hops
                if hops > MAX_HOPS:
                    raise SymlinkRefused(f"symlink {link!r} -> {self.links[link]!r} follows "
                                         f"more than {MAX_HOPS} symlinks")
                stack = list(inner.parts)
            else:
                stack.append(part)
        return stack, hops
