"""Supervised background loops (bot/tasks.py): a crash is logged, reported and restarted."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.tasks import TaskGroup


async def test_background_loop_that_crashes_is_restarted_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 9 item 1: one exception used to end the loop for good, silently for /healthz."""
    runs: list[int] = []
    release = asyncio.Event()
    seen_down: list[dict[str, str]] = []
    group = TaskGroup()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) <= 2:
            raise RuntimeError(f"boom {len(runs)}")
        await release.wait()  # the third run stays up

    group.supervise(flaky, "inbox", first_delay=0.01, max_delay=0.05)
    try:
        async with asyncio.timeout(5):
            while not group.down:
                await asyncio.sleep(0.001)
            seen_down.append(dict(group.down))
            while len(runs) < 3:
                await asyncio.sleep(0.001)
        assert group.down == {}
    finally:
        await group.close()
    assert seen_down[0]["inbox"].startswith("RuntimeError: boom")
    crashes = [r for r in caplog.records if "background loop inbox crashed" in r.getMessage()]
    assert len(crashes) == 2 and all(r.exc_info for r in crashes)
    assert all(r.levelno == logging.ERROR for r in crashes)


async def test_close_cancels_a_supervised_loop_without_restarting_it() -> None:
    group = TaskGroup()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = group.supervise(forever, "delivery")
    await asyncio.wait_for(started.wait(), 5)
    await group.close()
    assert task.cancelled() and group.down == {}
