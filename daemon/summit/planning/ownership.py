"""Which source may publish which package names.

A package name belongs to the source whose recipe declares it: the source's own name, the
packages its committed manifest lists, and the packages its recipe declares. A source's own
name is always its own, whoever else declares it; any other name two sources declare is a
conflict, refused with both named, until one recipe drops it. A name of the source's own
family (``<source>-devel``, ``<source>-32bit``...) is the source's too unless another source
declares it. Anything else a build produces is refused before it can reach
the repository, with both sources named when another one owns it: otherwise one recipe
could publish ``victim`` and lock out the real ``victim`` source.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable


def check_packages(source: str, names: Iterable[str],
                   declared_by: Callable[[str], Collection[str]]) -> tuple[str, ...] | str:
    """The names ``source`` may publish, sorted; or why not, as one sentence.

    ``declared_by(name)`` gives the sources that declare ``name`` (for every recipe of the
    same arch that summit knows)."""
    allowed: list[str] = []
    problems: list[str] = []
    for name in sorted(set(names)):
        owners = set(declared_by(name))
        if name in owners:  # a source of that very name declares it: it is that source's
            owners = {name}
        others = sorted(owners - {source})
        if source in owners and others:
            problems.append(f"package {name!r} is declared by both {source!r} and "
                            f"{', '.join(repr(o) for o in others)}: one recipe must drop it")
        elif source in owners or (not others and name == source):
            allowed.append(name)
        elif others:
            problems.append(f"package {name!r} belongs to source {others[0]!r}"
                            + (f" (and {', '.join(others[1:])})" if others[1:] else ""))
        elif name.startswith(f"{source}-"):
            allowed.append(name)
        else:
            problems.append(f"package {name!r} is not declared by {source!r}'s recipe or "
                            "manifest")
    if problems:
        return f"refused to publish the build of {source!r}: " + "; ".join(problems)
    return tuple(allowed)
