"""The bare git mirrors of every watched recipe repository, with one fetch at a time each.

The watcher fetches them and the scheduler reads trees and diffs from them; both share this
one object so that git never runs two fetches of one mirror at once (it locks its refs).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from daemon.summit.gitrepo import Mirror, RepoConfig
from events.errors import CairnError


class Mirrors:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._mirrors: dict[str, Mirror] = {}
        self._fetching: dict[str, asyncio.Lock] = {}

    async def open(self, repos: Iterable[RepoConfig]) -> None:
        for repo in repos:
            self._mirrors[repo.name] = await asyncio.to_thread(Mirror.open, repo, self.root)

    def __getitem__(self, name: str) -> Mirror:
        try:
            return self._mirrors[name]
        except KeyError:
            raise CairnError(f"there is no mirror of repository {name!r}") from None

    def values(self) -> list[Mirror]:
        return list(self._mirrors.values())

    async def fetch(self, name: str) -> None:
        async with self._fetching.setdefault(name, asyncio.Lock()):
            await self[name].afetch()
