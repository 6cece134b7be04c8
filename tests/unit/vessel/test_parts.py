"""Cutting a channel's members into parts: the cut depends on the member set alone, and a
change rewrites only the parts around it."""

from __future__ import annotations

import hashlib
import random

from daemon.vessel.parts import (
    AVERAGE,
    MemberRef,
    Members,
    Part,
    change,
    cut,
    is_boundary,
    unlisted,
)


def member(i: int, version: int = 1) -> MemberRef:
    name = f"pkg{i:05d}"
    return (name, name, hashlib.sha256(f"{name}-{version}".encode()).hexdigest())


def as_parts(pieces: list[Part | list[MemberRef]]) -> Members:
    return Members(tuple(p if isinstance(p, Part) else Part(f"new{i}", 0, tuple(p))
                         for i, p in enumerate(pieces)))


def test_parts_end_at_boundary_names_and_stay_small() -> None:
    members = sorted(member(i) for i in range(20_000))
    parts = cut(members)
    assert [m for p in parts for m in p] == members
    assert all(is_boundary(p[-1][0]) for p in parts[:-1])
    assert 20_000 / len(parts) < 2 * AVERAGE
    assert max(len(p) for p in parts) < 12 * AVERAGE


def test_a_change_touches_only_its_parts_and_cuts_as_a_full_cut_would() -> None:
    rng = random.Random(7)
    members = sorted(member(i) for i in range(0, 12_000, 2))
    base = as_parts(list(cut(members)))
    for _round in range(40):
        current = base.all()
        removed = set(rng.sample(current, rng.randint(0, 3)))
        upgraded = {(n, s, hashlib.sha256(h.encode()).hexdigest()) for n, s, h in
                    rng.sample(current, 2)}
        replaced = {m for m in current if m[0] in {u[0] for u in upgraded}}
        fresh = {member(rng.randrange(12_000) | 1) for _ in range(2)} - set(current)
        pieces = change(base, removed | replaced, upgraded | fresh)
        expected = sorted((set(current) - removed - replaced) | upgraded | fresh)
        assert [list(p.members) if isinstance(p, Part) else p for p in pieces] == cut(expected)
        rewritten = sum(1 for p in pieces if not isinstance(p, Part))
        assert rewritten <= 2 * (len(removed) + len(replaced) + len(fresh))
        base = as_parts(pieces)


def test_members_are_found_by_value_and_by_name() -> None:
    members = sorted(member(i) for i in range(3_000))
    view = as_parts(list(cut(members)))
    assert all(m in view for m in members[::97])
    assert member(5, version=2) not in view
    assert view.named("pkg00005") == [member(5)]
    assert view.named("absent") == []
    assert Members(()).named("pkg00005") == [] and member(1) not in Members(())


def test_an_empty_channel_gets_its_first_parts() -> None:
    pieces = change(Members(()), set(), [member(2), member(1)])
    assert pieces == [[member(1), member(2)]]


def stored(pieces: list[Part | list[MemberRef]]) -> Members:
    """Pieces as stored parts: a part's identity is its members (as its hash would be)."""
    return Members(tuple(p if isinstance(p, Part) else
                         Part(hashlib.sha256(repr(p).encode()).hexdigest(), 0, tuple(p))
                         for p in pieces))


def test_unlisted_finds_exactly_the_packages_no_kept_generation_lists() -> None:
    rng = random.Random(11)
    base = stored(list(cut(sorted(member(i) for i in range(4_000)))))
    generations = [base]
    for _round in range(12):
        current = generations[-1]
        replaced = set(rng.sample(current.all(), rng.randint(1, 4)))
        upgraded = {(n, s, hashlib.sha256(h.encode()).hexdigest()) for n, s, h in replaced}
        removed = set(rng.sample(current.all(), rng.randint(0, 2)))
        generations.append(stored(change(current, replaced | removed, upgraded)))
    # Another channel holds an early generation's packages, cut elsewhere (a sorted list cut
    # anywhere is searched the same way): its packages are kept by it alone.
    early = generations[3].all()
    other = stored([list(early[i:i + 300]) for i in range(0, len(early), 300)])
    for keep in (1, 3, 6):
        dropped, kept = generations[:-keep], [*generations[-keep:], other]
        kept_parts = {p.sha256 for view in kept for p in view.parts}
        dead = {p.sha256: p for view in dropped for p in view.parts
                if p.sha256 not in kept_parts}
        listed = {m[2] for view in kept for m in view.all()}
        expected = {m[2] for p in dead.values() for m in p.members} - listed
        assert expected  # the case is not trivial
        assert unlisted(list(dead.values()), kept) == expected
    assert unlisted([], generations) == set()
    assert unlisted(list(base.parts), []) == {m[2] for m in base.all()}


def test_spanning_gives_the_parts_over_a_range_of_names() -> None:
    view = stored(list(cut(sorted(member(i) for i in range(3_000)))))
    first, last = view.parts[2].members[5][0], view.parts[4].members[0][0]
    assert view.spanning(first, last) == list(view.parts[2:5])
    assert view.spanning("pkg00007", "pkg00007") == [view.parts[view._part_of(member(7))]]
    assert view.spanning("zzz", "zzz") == [] and Members(()).spanning("a", "z") == []
