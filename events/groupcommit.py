"""Group commit: effects that arrive together share one SQLite transaction.

Why: a consumer with a prefetch of 64 handles many events at once, and one transaction per
event costs a ``BEGIN``, a ``COMMIT`` and their round trips to the database thread each. Here
the first submitter that finds no commit running commits at once (an idle service waits for
nothing); items submitted while a commit runs wait for it and then go together in the next
one.

The guarantees of one transaction per event are kept: :meth:`GroupCommit.submit` returns
only after the transaction holding its item committed, so a consumer acknowledges an event
only once its effect is durable, exactly as before. If a group's transaction fails, each of
its items is tried again in a transaction of its own, so one bad item fails alone and never
takes the others with it (they would otherwise be redelivered, and dead-lettered with it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from events.sqlite import Connection, Database

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """Apply ``effect(conn, item)`` for each submitted item, in shared transactions."""

    def __init__(self, db: Database, effect: Callable[[Connection, T], Awaitable[R]]) -> None:
        self.db = db
        self.effect = effect
        #: Transactions committed (a figure for tests and benchmarks).
        self.commits = 0
        self._waiting: list[_Waiting[T, R]] = []
        self._running = asyncio.Lock()

    async def submit(self, item: T) -> R:
        """``effect``'s result for ``item`` once its transaction committed."""
        me: _Waiting[T, R] = _Waiting(item, asyncio.get_running_loop().create_future())
        self._waiting.append(me)
        try:
            async with self._running:
                if not me.done.done():
                    group, self._waiting = self._waiting, []
                    try:
                        await self._commit(group)
                    except BaseException as exc:
                        _settle_others(group, me, exc)
                        raise
        except BaseException:
            if me in self._waiting:
                self._waiting.remove(me)
            raise
        return await me.done

    async def _commit(self, group: list[_Waiting[T, R]]) -> None:
        try:
            async with self.db.transaction() as conn:
                results = [await self.effect(conn, w.item) for w in group]
            self.commits += 1
        except Exception:
            if len(group) == 1:
                raise
            for waiting in group:  # alone, so that only a bad item fails
                await self._alone(waiting)
            return
        for waiting, result in zip(group, results, strict=True):
            waiting.done.set_result(result)

    async def _alone(self, waiting: _Waiting[T, R]) -> None:
        try:
            async with self.db.transaction() as conn:
                result = await self.effect(conn, waiting.item)
            self.commits += 1
        except Exception as exc:
            waiting.done.set_exception(exc)
        else:
            waiting.done.set_result(result)


def _settle_others(group: list[_Waiting[T, R]], me: _Waiting[T, R], exc: BaseException) -> None:
    """The leader failed or was cancelled mid-commit: nobody else may wait forever."""
    for waiting in group:
        if waiting is not me and not waiting.done.done():
            if isinstance(exc, Exception):
                waiting.done.set_exception(exc)
            else:
                waiting.done.cancel()
