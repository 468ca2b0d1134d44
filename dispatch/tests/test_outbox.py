"""An outbox writes what queued while a pipeline was out in one pipeline, in order, and
fails exactly the items of a pipeline that failed."""

import asyncio

from dispatch.redis_clients import Outbox, PipelineFailed


class Writes:
    """A writer whose writes stay out until released, one at a time."""

    def __init__(self, failing: set[str] = frozenset()):
        self.failing = failing
        self.pipelines: list[list[str]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, items: list[str]) -> None:
        self.pipelines.append(items)
        self.started.set()
        async with asyncio.timeout(5):  # a test that goes wrong fails rather than hangs
            await self.release.wait()
        if self.failing & set(items):
            raise ConnectionError("Redis went away")


async def _settled(awaitable):
    """What `awaitable` gives; a test that goes wrong fails rather than hangs."""
    async with asyncio.timeout(5):
        return await awaitable


async def _first_out(outbox: Outbox, writes: Writes, item: str) -> asyncio.Task:
    task = asyncio.create_task(outbox.put(item))
    await writes.started.wait()
    return task


async def test_what_queues_behind_a_pipeline_goes_in_the_next_in_order():
    writes = Writes()
    outbox = Outbox(writes)
    first = await _first_out(outbox, writes, "a")
    queued = [asyncio.create_task(outbox.put(item)) for item in "bcd"]
    await asyncio.sleep(0)  # every put has queued its item behind the first pipeline

    writes.release.set()
    await asyncio.gather(first, *queued)

    assert writes.pipelines == [["a"], ["b", "c", "d"]]


async def test_a_failed_pipeline_fails_its_items_and_the_next_one_goes():
    writes = Writes(failing={"b"})
    outbox = Outbox(writes)
    first = await _first_out(outbox, writes, "a")
    queued = [asyncio.create_task(outbox.put(item)) for item in "bc"]
    await asyncio.sleep(0)
    writes.release.set()

    results = await asyncio.gather(first, *queued, return_exceptions=True)
    await _settled(outbox.put("d"))

    assert results[0] is None
    assert [type(result) for result in results[1:]] == [PipelineFailed, PipelineFailed]
    assert isinstance(results[1].__cause__, ConnectionError)
    assert writes.pipelines == [["a"], ["b", "c"], ["d"]]


async def test_an_item_whose_sender_gave_up_while_queued_is_not_written():
    writes = Writes()
    outbox = Outbox(writes)
    first = await _first_out(outbox, writes, "a")
    given_up = asyncio.create_task(outbox.put("b"))
    kept = asyncio.create_task(outbox.put("c"))
    await asyncio.sleep(0)

    given_up.cancel()
    writes.release.set()
    await asyncio.gather(first, kept)

    assert given_up.cancelled()
    assert writes.pipelines == [["a"], ["c"]]


async def test_a_sender_that_gives_up_once_its_item_is_out_holds_up_no_other():
    writes = Writes()
    outbox = Outbox(writes)
    first = await _first_out(outbox, writes, "a")
    writes.started.clear()
    given_up = asyncio.create_task(outbox.put("b"))
    kept = asyncio.create_task(outbox.put("c"))
    await asyncio.sleep(0)
    writes.release.set()  # lets the first pipeline through, and only it
    writes.release.clear()
    await first
    await writes.started.wait()  # "b" and "c" are out together

    given_up.cancel()
    writes.release.set()
    await _settled(kept)

    assert given_up.cancelled()
    assert writes.pipelines == [["a"], ["b", "c"]]


async def test_senders_whose_items_went_out_together_return_together():
    # Not one turn of the event loop each, as when each had to take the lock in turn
    # to find its item written (docs/benchmarks.md, finding 58).
    writes = Writes()
    outbox = Outbox(writes)
    first = await _first_out(outbox, writes, "a")
    carried = [asyncio.create_task(outbox.put(str(number))) for number in range(50)]
    await asyncio.sleep(0)

    writes.release.set()
    for _ in range(3):  # the write's turn, then the senders'
        await asyncio.sleep(0)

    assert first.done() and all(sender.done() for sender in carried)
    assert len(writes.pipelines) == 2


async def test_a_writer_cut_off_fails_what_it_carried_and_what_waited_and_the_next_goes():
    """As when the event loop closes, cancelling every task."""
    writes = Writes()
    outbox = Outbox(writes)
    cut_off = await _first_out(outbox, writes, "a")
    waiting = asyncio.create_task(outbox.put("b"))
    await asyncio.sleep(0)

    for task in asyncio.all_tasks() - {asyncio.current_task(), waiting, cut_off}:
        task.cancel()  # the outbox's writer, mid-write
    results = await _settled(asyncio.gather(cut_off, waiting, return_exceptions=True))

    assert [type(result) for result in results] == [PipelineFailed, PipelineFailed]
    writes.release.set()
    await _settled(outbox.put("c"))
    assert writes.pipelines == [["a"], ["c"]]


async def test_a_writer_whose_cancel_a_write_lost_still_ends():
    """As when the loop closes while a subscription's writer is in redis-py's
    `wait_for`, whose call has just finished: Python 3.11 then loses the cancel."""
    calls: asyncio.Queue = asyncio.Queue()

    async def write(items: list[str]) -> None:
        call = asyncio.get_running_loop().create_future()
        calls.put_nowait(call)
        await asyncio.wait_for(call, 10)

    outbox = Outbox(write)
    sent = asyncio.create_task(outbox.put("a"))
    call = await calls.get()
    (writer,) = asyncio.all_tasks() - {asyncio.current_task(), sent}

    call.set_result(None)
    writer.cancel()
    await _settled(asyncio.wait([writer]))

    assert writer.cancelled()
    assert await _settled(sent) is None  # its pipeline went through


async def test_each_sender_gets_its_own_items_reply_when_the_write_gives_replies():
    pipelines: list[list[str]] = []
    release = asyncio.Event()

    async def read(items: list[str]) -> list[str]:
        pipelines.append(items)
        await release.wait()
        return [item.upper() for item in items]

    outbox = Outbox(read)
    first = asyncio.create_task(outbox.put("a"))
    await asyncio.sleep(0)  # "a" is out
    queued = [asyncio.create_task(outbox.put(item)) for item in "bcd"]
    await asyncio.sleep(0)

    release.set()
    replies = await _settled(asyncio.gather(first, *queued))

    assert replies == ["A", "B", "C", "D"]
    assert pipelines == [["a"], ["b", "c", "d"]]


async def test_items_put_together_go_in_one_pipeline_in_order_and_return_together():
    writes = Writes()
    outbox = Outbox(writes)
    first = await _first_out(outbox, writes, "a")
    together = asyncio.create_task(outbox.put_all(["b", "c", "d"]))
    after = asyncio.create_task(outbox.put("e"))
    await asyncio.sleep(0)

    writes.release.set()
    await _settled(asyncio.gather(first, together, after))

    assert writes.pipelines == [["a"], ["b", "c", "d", "e"]]


async def test_items_put_together_fail_together_and_are_taken_back_together():
    writes = Writes(failing={"c"})
    outbox = Outbox(writes)
    first = await _first_out(outbox, writes, "a")
    failing = asyncio.create_task(outbox.put_all(["b", "c"]))
    given_up = asyncio.create_task(outbox.put_all(["x", "y"]))
    await asyncio.sleep(0)

    given_up.cancel()
    writes.release.set()
    results = await _settled(asyncio.gather(first, failing, return_exceptions=True))

    assert results[0] is None and isinstance(results[1], PipelineFailed)
    assert given_up.cancelled()
    assert writes.pipelines == [["a"], ["b", "c"]]


async def test_nothing_put_together_returns_at_once_and_writes_nothing():
    writes = Writes()
    outbox = Outbox(writes)

    await _settled(outbox.put_all([]))

    assert writes.pipelines == []
