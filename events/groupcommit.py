"""Group commit: effects that arrive together share one SQLite transaction.

Why: a consumer with a prefetch of 64 handles many events at once, and one transaction per
event costs a ``BEGIN``, a ``COMMIT`` and their round trips to the database thread each. Here
the first submitter that finds no commit running commits at once (an idle service waits for
nothing); items submitted while a commit runs wait for it and then go together in the next
one.

The guarantees of one transaction per event are kept: :meth:`GroupCommit.submit` returns
only after the transaction holding its item committed, so a consumer acknowledges an event
only once its effect is durable, exactly as before. A process that dies before a group's
``COMMIT`` has acknowledged none of its events: the broker delivers each again, and the
inbox claims rolled back with the group let each be handled anew. If a group's transaction
fails, each of its items is tried again in a transaction of its own, so one bad item fails
alone and never takes the others with it (they would otherwise be redelivered, and
dead-lettered with it).

A service that keeps state in memory beside the database (summit's planners) gives a
``guard`` (held around every transaction, so its memory has one writer at a time) and an
``undo`` (called, under the guard, after any transaction that did not commit: its memory
went ahead of what is stored, and is rebuilt from the database before anything else runs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from events.sqlite import Connection, Database

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    item: T
    done: asyncio.Future[R]


class GroupCommit(Generic[T, R]):
    """Apply ``effect(conn, item)`` for each submitted item, in shared transactions."""

    def __init__(self, db: Database, effect: Callable[[Connection, T], Awaitable[R]], *,
                 guard: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
                 undo: Callable[[], Awaitable[None]] | None = None) -> None:
        self.db = db
        self.effect = effect
        self._guard = guard or contextlib.nullcontext
        self._undo = undo
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
                    await self._lead(me)
        except BaseException:
            if me in self._waiting:
                self._waiting.remove(me)
            raise
        return await me.done

    async def _lead(self, me: _Waiting[T, R]) -> None:
        """Commit every item waiting once the guard is held (those that arrived while it was
        taken, too), ``me`` among them."""
        async with self._guard():
            group, self._waiting = self._waiting, []
            try:
                await self._commit(group)
            except BaseException as exc:
                _settle_others(group, me, exc)
                raise

    async def _commit(self, group: list[_Waiting[T, R]]) -> None:
        try:
            results = await self._transaction([w.item for w in group])
        except Exception:
            if len(group) == 1:
                raise
            for waiting in group:  # alone, so that only a bad item fails
                await self._alone(waiting)
            return
        for waiting, result in zip(group, results, strict=True):
            waiting.done.set_result(result)

    async def _transaction(self, items: list[T]) -> list[R]:
        """``effect`` for each item in one transaction; ``undo`` if it did not commit."""
        try:
            async with self.db.transaction() as conn:
                results = [await self.effect(conn, item) for item in items]
        except BaseException:
            if self._undo is not None:
                await self._undo()
            raise
        self.commits += 1
        return results

    async def _alone(self, waiting: _Waiting[T, R]) -> None:
        try:
            [result] = await self._transaction([waiting.item])
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
