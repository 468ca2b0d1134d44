import asyncio

import pytest

from config import tasks
from config.tasks import raise_if_cancelled, stopped


@pytest.fixture
def quick_cancels(monkeypatch):
    monkeypatch.setattr(tasks, "CANCEL_AGAIN_AFTER_SECONDS", 0.01)


@pytest.fixture
async def let_go():
    """Set as a test ends: a task it made that is still running then ends, so that a
    test that fails does not leave it behind."""
    event = asyncio.Event()
    yield event
    event.set()
    await asyncio.sleep(0)


class Rounds:
    """A long-lived loop, as a process runs: round after round until `let_go` is set,
    it runs `each_round()` and then waits for a call through `wait_for`, as redis-py's
    writes do. The test finishes each call (`calls`); `done` counts the rounds."""

    def __init__(self, let_go: asyncio.Event, each_round=lambda: None):
        self.let_go = let_go
        self.each_round = each_round
        self.calls: asyncio.Queue = asyncio.Queue()
        self.done = 0

    async def run(self) -> None:
        while not self.let_go.is_set():
            self.each_round()
            call = asyncio.get_running_loop().create_future()
            await self.calls.put(call)
            await asyncio.wait_for(call, 10)
            self.done += 1


async def test_a_loop_whose_cancel_wait_for_lost_is_stopped(quick_cancels, let_go):
    rounds = Rounds(let_go)
    task = asyncio.create_task(rounds.run())
    # The call finishes and `stopped` cancels the task before it has resumed: Python
    # 3.11's wait_for then returns the call's result, and the loop goes round again.
    (await rounds.calls.get()).set_result(None)

    await stopped(task)

    assert task.cancelled() and rounds.done == 1


class Stubborn:
    """A task's work that takes a cancel as the end only at the `ends_at`th (never,
    if None), and otherwise waits on."""

    def __init__(self, let_go: asyncio.Event, ends_at: int | None = None):
        self.let_go = let_go
        self.ends_at = ends_at
        self.cancels = 0

    async def run(self) -> None:
        while not self.let_go.is_set():
            try:
                await self.let_go.wait()
            except asyncio.CancelledError:
                self.cancels += 1
                if self.cancels == self.ends_at:
                    raise


async def test_a_task_that_ends_only_on_a_later_cancel_is_stopped(quick_cancels, let_go):
    stubborn = Stubborn(let_go, ends_at=3)
    task = asyncio.create_task(stubborn.run())
    await asyncio.sleep(0)

    await stopped(task)

    assert task.cancelled() and stubborn.cancels == 3


async def test_a_task_that_never_ends_is_left_behind_and_said_so(quick_cancels, let_go, caplog):
    stubborn = Stubborn(let_go)
    task = asyncio.create_task(stubborn.run())
    await asyncio.sleep(0)

    await stopped(task)

    assert stubborn.cancels == tasks.CANCELS and not task.done()
    assert "did not end when cancelled 10 times" in caplog.text


async def test_a_task_that_failed_says_so_as_it_is_stopped():
    async def fails():
        raise RuntimeError("the sweeper broke")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="the sweeper broke"):
        await stopped(task)


async def test_a_loop_that_checks_ends_on_the_cancel_wait_for_lost(let_go):
    rounds = Rounds(let_go, each_round=raise_if_cancelled)
    task = asyncio.create_task(rounds.run())
    (await rounds.calls.get()).set_result(None)
    task.cancel()  # before the task resumes: wait_for loses it
    done, _ = await asyncio.wait([task], timeout=5)

    assert done and task.cancelled() and rounds.done == 1
    assert raise_if_cancelled() is None  # a task not cancelled goes on
