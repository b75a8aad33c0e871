"""Between gRPC streams on the event loop and blocking file work in a thread, with at most a
few chunks in between: memory stays flat whatever the size, and the loop never blocks.

:func:`consume` hands a client stream's chunks to ``work(chunks)`` in a thread;
:func:`produce` streams what ``work(emit)`` emits in a thread. When the stream is cut off,
the thread's next step raises, so its ``finally`` blocks clean up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

from relman_common.db import DbExecutor
from relman_common.errors import InvalidArgument

T = TypeVar("T")

# Chunks (of up to 1 MiB) waiting between the stream and the thread.
QUEUE_CHUNKS = 4
# A thread waits this long for the other side before it gives up.
IDLE_SECONDS = 300.0
_END = object()


class CutOff(InvalidArgument):
    """The stream ended early: the client went away or the call was cancelled."""


async def _put_unless_done(queue: asyncio.Queue[Any], item: Any, job: asyncio.Future[Any]) -> bool:
    """Puts ``item``, unless ``job`` ends first (False then)."""
    put = asyncio.ensure_future(queue.put(item))
    done, _ = await asyncio.wait({put, job}, return_when=asyncio.FIRST_COMPLETED)
    if put in done:
        return True
    put.cancel()
    return False


def _drain(queue: asyncio.Queue[Any]) -> None:
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            queue.get_nowait()


async def consume(
    chunks: AsyncIterator[bytes], work: Callable[[Iterator[bytes]], T], executor: DbExecutor
) -> T:
    """``work(iterator of chunks)`` in a thread of ``executor``, fed from ``chunks``; its
    result, or its error (then the rest of ``chunks`` is not read)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_CHUNKS)

    def pull() -> Iterator[bytes]:
        while True:
            future = asyncio.run_coroutine_threadsafe(queue.get(), loop)
            try:
                item = future.result(IDLE_SECONDS)
            except concurrent.futures.TimeoutError:
                future.cancel()
                raise CutOff(f"the stream sent nothing for {IDLE_SECONDS:.0f} s") from None
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    job = asyncio.ensure_future(executor.run(work, pull()))
    try:
        async for chunk in chunks:
            if not await _put_unless_done(queue, chunk, job):
                break
        else:
            await _put_unless_done(queue, _END, job)
        return await job
    except BaseException:
        _drain(queue)
        queue.put_nowait(CutOff("the stream was cut off before its end: nothing was kept"))
        job.add_done_callback(_settled)
        raise


async def produce(work: Callable[[Callable[[bytes], None]], None]) -> AsyncIterator[bytes]:
    """The chunks ``work(emit)`` emits from a daemon thread, as they come; its error at the
    end. When the consumer stops early, ``emit`` raises in the thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    stopped = threading.Event()

    def emit(data: bytes) -> None:
        if stopped.is_set():
            raise CutOff("the stream was cut off")
        asyncio.run_coroutine_threadsafe(queue.put(data), loop).result(IDLE_SECONDS)

    job = in_thread(work, emit)
    try:
        while True:
            get = asyncio.ensure_future(queue.get())
            await asyncio.wait({get, job}, return_when=asyncio.FIRST_COMPLETED)
            if not get.done():
                get.cancel()
                break
            yield get.result()
        while not queue.empty():
            yield queue.get_nowait()
        await job
    finally:
        stopped.set()
        _drain(queue)
        job.add_done_callback(_settled)


def _settled(future: asyncio.Future[Any]) -> None:
    """Takes the outcome of work nobody waits for any more (its error was expected)."""
    if not future.cancelled():
        future.exception()


def in_thread(fn: Callable[..., T], *args: Any, name: str = "relman-build") -> asyncio.Future[T]:
    """``fn(*args)`` in a new daemon thread (a build may outlive a stopping service: the
    process must not wait for it to exit); its result as a future of the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        def apply() -> None:
            if not future.done():
                setter(value)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(apply)

    def run() -> None:
        try:
            result = fn(*args)
        except BaseException as err:
            settle(future.set_exception, err)
        else:
            settle(future.set_result, result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
