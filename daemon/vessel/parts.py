"""A generation's members cut into parts by their names: pure, no I/O.

The rule (content-defined, like a rolling-hash chunker): in the member list sorted by name, a
part ends after every member whose name is a *boundary* (its CRC-32 is 0 modulo
:data:`AVERAGE`), and at the end of the list. So the cut depends only on the member set:
changing, adding or removing a package changes the one part around it (two when a boundary
name comes or goes), never the others, and a part's size does not grow with the repository
(~:data:`AVERAGE` members). :func:`change` applies a change to the parts it touches only and
gives exactly what :func:`cut` would give for the whole new list (a unit test holds that).
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

#: One member of a generation: (package name, source name, sha256 hex).
MemberRef = tuple[str, str, str]

#: Members per part on average.
AVERAGE = 512


def is_boundary(name: str) -> bool:
    return zlib.crc32(name.encode()) % AVERAGE == 0


@dataclass(frozen=True)
class Part:
    """A stored part: its content hash, file size and members (sorted)."""

    sha256: str
    size: int
    members: tuple[MemberRef, ...]


def cut(members: Sequence[MemberRef]) -> list[list[MemberRef]]:
    """Cut a sorted member list into parts by the boundary rule."""
    parts: list[list[MemberRef]] = []
    current: list[MemberRef] = []
    for member in members:
        current.append(member)
        if is_boundary(member[0]):
            parts.append(current)
            current = []
    if current:
        parts.append(current)
    return parts


@dataclass(frozen=True)
class Members:
    """A generation's member set as its parts, searchable without unpacking them."""

    parts: tuple[Part, ...]
    _lasts: list[MemberRef] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._lasts.extend(p.members[-1] for p in self.parts)

    @property
    def count(self) -> int:
        return sum(len(p.members) for p in self.parts)

    def all(self) -> list[MemberRef]:
        return [m for p in self.parts for m in p.members]

    def _part_of(self, member: MemberRef) -> int:
        """The index of the part that holds (or would hold) ``member``."""
        return min(bisect.bisect_left(self._lasts, member), len(self.parts) - 1)

    def __contains__(self, member: object) -> bool:
        if not self.parts or not isinstance(member, tuple):
            return False
        held = self.parts[self._part_of(member)].members
        i = bisect.bisect_left(held, member)
        return i < len(held) and held[i] == member

    def named(self, name: str) -> list[MemberRef]:
        """The members called ``name`` (one, in a consistent channel)."""
        if not self.parts:
            return []
        found = []
        for index in range(self._part_of((name, "", "")), len(self.parts)):
            held = self.parts[index].members
            found += [m for m in held[bisect.bisect_left(held, (name, "", "")):]
                      if m[0] == name]
            if held[-1][0] > name:
                break
        return found

    def spanning(self, first: str, last: str) -> list[Part]:
        """The parts that hold (or would hold) members named ``first`` to ``last``."""
        found: list[Part] = []
        for index in range(bisect.bisect_left(self._lasts, (first,)), len(self.parts)):
            if self.parts[index].members[0][0] > last:
                break
            found.append(self.parts[index])
        return found


def unlisted(dropped: Iterable[Part], kept: Iterable[Members]) -> set[str]:
    """The packages (sha256) listed by ``dropped`` parts that no part of ``kept`` lists.

    Why only a few parts are read: a generation's parts are its member list sorted by name,
    cut, so a package named N (a package's name is in its archive, hence fixed by its hash)
    can only be in the parts of a kept generation that span N. What this reads is the dropped
    parts and, per distinct kept generation, the parts spanning their names: the cost of the
    change, not of the repository.
    """
    gone = [p for p in dropped if p.members]
    candidates = {m[2] for p in gone for m in p.members}
    seen: set[int] = set()
    for view in kept:
        if not candidates:
            break
        for part in gone:
            for holder in view.spanning(part.members[0][0], part.members[-1][0]):
                if id(holder) not in seen:
                    seen.add(id(holder))
                    candidates.difference_update(m[2] for m in holder.members)
    return candidates


#: A result of :func:`change`: an unchanged part, or the members of a part to write.
Piece = Part | list[MemberRef]


def change(base: Members, removed: Collection[MemberRef], added: Iterable[MemberRef]
           ) -> list[Piece]:
    """The parts of ``base`` without ``removed`` and with ``added``: untouched parts as they
    are, new ones as member lists, in order."""
    parts = base.parts
    if not parts:
        return list(cut(sorted(added)))
    adds: dict[int, list[MemberRef]] = {}
    touched: set[int] = set()
    for member in added:
        adds.setdefault(base._part_of(member), []).append(member)
    touched.update(adds)
    touched.update(base._part_of(m) for m in removed if m in base)
    result: list[Piece] = []
    i = 0
    while i < len(parts):
        if i not in touched:
            result.append(parts[i])
            i += 1
            continue
        run: list[MemberRef] = []
        while True:
            run += [m for m in parts[i].members if m not in removed]
            run += adds.get(i, ())
            i += 1
            # A run ends where the cut of the whole list would: at a boundary name, or at
            # the end. Until then the next part joins it (its first cut moved).
            if i == len(parts) or (i not in touched and (not run or is_boundary(max(run)[0]))):
                break
        result += cut(sorted(run))
    return result
