"""Who may publish a name in a channel: each package name and each provider belongs to one
source.

Why: the index is what dependencies resolve against. If any source could publish a package
called ``openssl``, or a second ``binary(vtool)`` with a higher release, one recipe
repository account could replace another project's package for every machine that installs
from the channel.

The rule, per channel and arch, for every name a build offers (its packages' names and every
provider they declare, their implicit ``x``/``name(x)`` included):

1. if the declared-owner table names a source for it (for ``name(x)``: the owner of the
   package name ``x``), only that source may publish it; a package of another source that
   holds it is dropped from the new generation, so the owner takes its name back from a
   squatter;
2. otherwise, if the current generation holds it from another source, the build is refused,
   naming both sources (first published, first owned);
3. otherwise the build may publish it.

The declared table is what summit said in the build's ``build-accepted`` (the package
names the build's source declares), over a :class:`DeclaredOwners` table configured beside
it (see :class:`StaticOwners` for the shape). Vessel's own rule 2 stays as defence in depth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from daemon.vessel.errors import ImportRefused
from events.sqlite import Connection


@dataclass(frozen=True)
class Offer:
    """A name a build wants to publish: a package name or a provider, and the package
    (of the build) that offers it."""

    name: str
    package: str


@dataclass(frozen=True)
class Holder:
    """A package of the current generation that holds a name."""

    source: str
    package: str
    sha256: str


class DeclaredOwners(Protocol):
    """Which source owns which names, as declared outside vessel (by summit, from recipes).

    ``owners`` is called inside the import's transaction with the names a build offers;
    it returns the owner of each name it knows (package names, providers), and omits the
    rest. Implementations may read their own table through ``conn``.
    """

    async def owners(self, conn: Connection, channel: str,
                     names: frozenset[str]) -> Mapping[str, str]: ...


class StaticOwners:
    """A fixed table ``name -> source`` (a package name or a provider string)."""

    def __init__(self, table: Mapping[str, str] | None = None) -> None:
        self._table = dict(table or {})

    async def owners(self, conn: Connection, channel: str,
                     names: frozenset[str]) -> Mapping[str, str]:
        return {n: self._table[n] for n in names if n in self._table}


def judge(source: str, where: str, offers: Iterable[Offer],
          held: Mapping[str, list[Holder]], declared: Mapping[str, str]) -> frozenset[str]:
    """Apply the rule in the module docstring to a build of ``source``.

    ``where`` names the channel and arch (``volatile/x86_64``); ``held`` maps each offered
    name to the packages of the current generation holding it; ``declared`` is the
    declared-owner table for the offered names. Returns the sha256 of the packages of other
    sources to drop from the new generation (rule 1); raises :class:`ImportRefused` (rules 1
    and 2) naming both sources.
    """
    evicted: set[str] = set()
    for offer in sorted(offers, key=lambda o: (o.name != o.package, o.name, o.package)):
        owner = _declared_owner(offer.name, declared)
        # A package this build's owner evicted (rule 1, judged first) holds nothing any more.
        others = [h for h in held.get(offer.name, ())
                  if h.source != source and h.sha256 not in evicted]
        if owner is not None and owner != source:
            raise ImportRefused(
                f"{_what(offer)} belongs to source {owner}, whose recipe declares it, not to "
                f"{source}")
        if owner is not None:
            evicted.update(h.sha256 for h in others)
            continue
        if not others:
            continue
        holder = min(others, key=lambda h: (h.source, h.package))
        if offer.name == offer.package:
            raise ImportRefused(
                f"package {offer.name} is published in {where} by source {holder.source}, "
                f"not {source}: a package name belongs to the source that published it "
                f"first; rename the package or remove it from {holder.source}")
        raise ImportRefused(
            f"{_what(offer)} is already provided in {where} by package {holder.package} of "
            f"source {holder.source}: a provider belongs to the source that published it "
            f"first; drop it from {offer.package} or remove it from {holder.source}")
    return frozenset(evicted)


def _declared_owner(name: str, declared: Mapping[str, str]) -> str | None:
    """The declared owner of ``name``; ``name(x)`` belongs with the package name ``x``."""
    owner = declared.get(name)
    if owner is None and name.startswith("name(") and name.endswith(")"):
        owner = declared.get(name[len("name("):-1])
    return owner


def _what(offer: Offer) -> str:
    if offer.name == offer.package:
        return f"package name {offer.name}"
    return f"provider {offer.name} (of package {offer.package})"
