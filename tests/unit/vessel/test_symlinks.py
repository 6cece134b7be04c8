"""Symlink resolution is linear in the package and keeps the kernel's 40-link limit.

Regression: resolving each hop twice made an n-link chain cost 2^n steps, so a 719-byte
archive with 25 chained links held an import for 73 s (and a 40-link chain for days).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from daemon.vessel.archive import check_against_build, inspect_archive
from daemon.vessel.config import ArchiveLimits
from daemon.vessel.errors import ImportRefused
from daemon.vessel.symlinks import MAX_HOPS, SymlinkModel, SymlinkRefused
from events.payloads import Artefact
from tests.unit.vessel.builders import Pkg, Tweak, add_member, archive_bytes, build_done

FILES = {"usr/bin/tool": b"#!/bin/sh\necho tool\n"}


def chain(length: int) -> dict[str, str]:
    """``usr/lib/l1 -> l2 -> ... -> l<length> -> ../bin/tool``: opening l1 follows
    ``length`` links."""
    links = {f"usr/lib/l{i}": f"l{i + 1}" for i in range(1, length)}
    links[f"usr/lib/l{length}"] = "../bin/tool"
    return links


def import_archive(tmp_path: Path, symlinks: dict[str, str], tweak: Tweak | None = None) -> None:
    """Inspect a real archive and check it against its build, as an import does."""
    pkg = Pkg(name="tool", files=dict(FILES), symlinks=symlinks, tweak=tweak)
    blob = archive_bytes(pkg)
    path = tmp_path / pkg.filename
    path.write_bytes(blob)
    artefact = Artefact(name=pkg.name, filename=pkg.filename, url="http://x/",
                        sha256=hashlib.sha256(blob).hexdigest(), size=len(blob))
    inspected = inspect_archive(path, pkg.filename, ArchiveLimits(10**6, 10_000, 10**6))
    check_against_build(inspected, artefact, build_done([artefact], source="tool"))


def test_chain_at_the_limit_imports(tmp_path: Path) -> None:
    assert MAX_HOPS == 40  # the kernel's MAXSYMLINKS: what unpacked packages will meet
    import_archive(tmp_path, chain(MAX_HOPS))


def test_chain_past_the_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="more than 40 symlinks") as caught:
        import_archive(tmp_path, chain(MAX_HOPS + 1))
    assert "tool-1.0-1-1-x86_64.tar.zst" in str(caught.value)


@pytest.mark.parametrize("links", [
    {"usr/lib/a": "a"},
    {"usr/lib/a": "b", "usr/lib/b": "a"},
    {"usr/lib/a": "b/x", "usr/lib/b": "../lib/c", "usr/lib/c": "a"},
])
def test_loops_are_refused(tmp_path: Path, links: dict[str, str]) -> None:
    with pytest.raises(ImportRefused, match="is part of a symlink loop"):
        import_archive(tmp_path, links)


def test_member_beneath_a_symlink_is_refused(tmp_path: Path) -> None:
    # Unpacking usr/lib64/x would write through the link into usr/lib/x.
    with pytest.raises(ImportRefused, match="'usr/lib64/tool' lies beneath symlink 'usr/lib64'"):
        import_archive(tmp_path, {"usr/lib64": "lib"}, add_member("usr/lib64/tool"))


def test_escape_at_the_end_of_a_long_chain_is_refused(tmp_path: Path) -> None:
    links = chain(30)
    links["usr/lib/l30"] = "../../.."
    with pytest.raises(ImportRefused, match=r"'usr/lib/l30' -> '\.\./\.\./\.\.' points outside"):
        import_archive(tmp_path, links)


def _size(links: dict[str, str]) -> int:
    """Path components in the model: what a linear resolution may walk a few times over."""
    return sum(len(p.split("/")) + len(t.split("/")) for p, t in links.items())


@pytest.mark.parametrize("length", [20, 40])
def test_resolution_work_is_linear_in_the_chain(length: int) -> None:
    links = chain(length)
    model = SymlinkModel(links)
    model.check(list(links))
    assert model.steps <= 2 * _size(links)


def test_many_links_sharing_one_long_chain_are_resolved_once() -> None:
    # 2,000 links into the top of a 39-link chain: each link of the chain is walked once,
    # not once per link that reaches it (that would be 78,000 walks).
    links = chain(39)
    links.update({f"usr/share/s{i}": "../lib/l1" for i in range(2000)})
    model = SymlinkModel(links)
    model.check(list(links))
    assert model.steps <= 2 * _size(links)


def test_a_link_reached_through_a_chain_counts_every_hop() -> None:
    # Each of a/b/c costs 20 links: the path a/b/c follows 60 links and the kernel refuses it.
    links: dict[str, str] = {}
    for name in ("a", "b", "c"):
        for i in range(1, 20):
            links[f"{name}{i}"] = f"{name}{i + 1}"
        links[f"{name}20"] = "d"
    links["x"] = "a1/../b1/../c1"
    with pytest.raises(SymlinkRefused, match=r"'x' -> 'a1/\.\./b1/\.\./c1' follows more than 40"):
        SymlinkModel(links).check(list(links))
