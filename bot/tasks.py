"""Background tasks with strong references, logged failures, supervision and clean
cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait at most `timeout` seconds (None: for ever) for `event`; whether it was set.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that arrives just
    as the event is set, so a loop cancelled at shutdown kept running (the worker then sat
    in its next 30 s wait and shutdown hung).
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


class TaskGroup:
    """Keeps every task it starts until it ends; `close()` cancels and awaits them all."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Supervised loops that are down right now → why (for /healthz).
        self.down: dict[str, str] = {}

    def supervise(
        self,
        factory: Callable[[], Coroutine[Any, Any, Any]],
        name: str,
        *,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> asyncio.Task[Any]:
        """Run `factory()` forever: when it raises (or returns), log it with its traceback,
        mark the loop down, and start it again after a growing delay (reset once it has
        run for a minute without failing)."""
        return self.start(self._supervised(factory, name, first_delay, max_delay), name=name)

    async def _supervised(
        self,
        factory: Callable[[], Coroutine[Any, Any, Any]],
        name: str,
        first_delay: float,
        max_delay: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        delay = first_delay
        while True:
            started = loop.time()
            try:
                await factory()
                reason = "stopped unexpectedly"
                log.error("background loop %s stopped; starting it again in %.1f s", name, delay)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"[:200]
                log.exception(
                    "background loop %s crashed; starting it again in %.1f s", name, delay
                )
            self.down[name] = reason
            if loop.time() - started > 60:
                delay = first_delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
            self.down.pop(name, None)

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s crashed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
