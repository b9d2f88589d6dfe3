"""`common.service.cancel`: a task that turns cancellation into an error still stops."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from common.service import cancel


class DriverError(Exception):
    """What a driver raises instead of letting a cancellation through."""


async def _driver_call() -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        # As pymongo does while it selects a server: the cancellation becomes its error.
        raise DriverError("server selection interrupted") from None


async def test_a_loop_that_survives_errors_is_stopped_at_its_next_await() -> None:
    rounds = 0

    async def refresher() -> None:
        nonlocal rounds
        while True:
            rounds += 1
            with contextlib.suppress(DriverError):  # logged and retried, as a refresh does
                await _driver_call()
            await asyncio.sleep(30)

    task = asyncio.create_task(refresher())
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await asyncio.wait_for(cancel(task), 5)  # one cancellation alone never stopped it
    assert time.monotonic() - started < 3.0  # a few 50 ms rounds; margin for a loaded machine
    assert task.cancelled()
    assert rounds == 1


async def test_a_task_that_never_stops_is_left_behind_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn")
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await cancel(task, patience=0.3)
    assert 0.3 <= time.monotonic() - started < 3.0
    assert not task.done()
    assert "background task stubborn did not stop within 0.3 s" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1)
    assert task.done()


async def test_an_error_the_task_ended_with_is_raised() -> None:
    async def failing() -> None:
        raise DriverError("boom")

    task = asyncio.create_task(failing())
    await asyncio.sleep(0)
    with pytest.raises(DriverError):
        await cancel(task)
