"""Upload sources: a request body read block by block, and an async chunk stream handed to a thread.

MLflow's server passes a proxied upload either as a blocking stream (Flask, ``request.stream``) or as
an async iterator of chunks (FastAPI/uvicorn, ``request.stream()``). paramiko blocks, so the async
chunks go through a bounded pipe to a worker thread that writes them over SFTP; the event loop
never waits on SSH and at most ``depth`` blocks of about 1 MiB are held per upload.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterator
from typing import BinaryIO

from mlflow_sftp_store.errors import SftpUploadSourceError

BLOCK = 1024 * 1024
PIPE_DEPTH = 4


class Source:
    """Blocks of an upload's content, counting what was consumed; reading errors become
    ``SftpUploadSourceError`` (so they are never mistaken for a lost SSH connection)."""

    def __init__(self, blocks: Iterator[bytes], what: str) -> None:
        self._blocks = blocks
        self._what = what
        self.consumed = 0

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                block = next(self._blocks)
            except StopIteration:
                return
            except SftpUploadSourceError:
                raise
            except Exception as exc:
                raise SftpUploadSourceError(
                    f"Reading {self._what} failed after {self.consumed} bytes "
                    f"({type(exc).__name__}: {exc}); nothing was stored"
                ) from exc
            if block:
                self.consumed += len(block)
                yield block


def stream_blocks(stream: BinaryIO, size: int = BLOCK) -> Iterator[bytes]:
    """Blocks of a blocking binary stream until EOF."""
    while block := stream.read(size):
        yield block


class _Aborted:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_EOF = object()


class AsyncPipe:
    """A bounded hand-over of blocks from an event loop (producer) to one thread (consumer)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, depth: int = PIPE_DEPTH) -> None:
        self._loop = loop
        self._depth = depth
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._space = asyncio.Event()
        self._space.set()
        self._consumer_gone = False

    # ---- event-loop side

    async def _put(self, item: object) -> bool:
        """Queue ``item``, waiting (without blocking the loop) while the pipe is full; False when the
        consumer has stopped."""
        while True:
            with self._cond:
                if self._consumer_gone:
                    return False
                if len(self._items) < self._depth:
                    self._items.append(item)
                    self._cond.notify()
                    return True
                self._space.clear()
            await self._space.wait()

    async def feed(self, chunks: AsyncIterable[bytes]) -> None:
        """Pass ``chunks`` on in blocks of at least ``BLOCK`` bytes, then end of stream. Stops early
        (quietly) when the consumer is gone; errors of ``chunks`` abort the consumer and propagate."""
        pending: list[bytes] = []
        size = 0
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                pending.append(bytes(chunk))
                size += len(chunk)
                if size >= BLOCK:
                    block = pending[0] if len(pending) == 1 else b"".join(pending)
                    pending, size = [], 0
                    if not await self._put(block):
                        return
            if pending and not await self._put(b"".join(pending)):
                return
            await self._put(_EOF)
        except BaseException as exc:
            self.abort(exc)
            raise

    def abort(self, exc: BaseException) -> None:
        """Make the consumer's next read fail (callable from the loop; never waits)."""
        with self._cond:
            self._items.clear()
            self._items.append(_Aborted(exc))
            self._cond.notify()

    # ---- thread side

    def _wake_producer(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._space.set)
        except RuntimeError:  # loop closed: nobody is waiting any more
            pass

    def blocks(self) -> Iterator[bytes]:
        """The blocks, for the consumer thread; raises ``SftpUploadSourceError`` if the producer failed."""
        while True:
            with self._cond:
                while not self._items:
                    self._cond.wait()
                item = self._items.popleft()
            self._wake_producer()
            if item is _EOF:
                return
            if isinstance(item, _Aborted):
                exc = item.exc
                raise SftpUploadSourceError(
                    f"The upload's request body could not be read ({type(exc).__name__}: {exc}); "
                    "nothing was stored"
                ) from exc
            yield item

    def consumer_done(self) -> None:
        """The consumer stopped (finished or failed): release a producer waiting for space."""
        with self._cond:
            self._consumer_gone = True
            self._items.clear()
        self._wake_producer()


async def run_with_async_source(
    chunks: AsyncIterable[bytes], upload: Callable[[Iterator[bytes]], None], name: str
) -> None:
    """Run ``upload(blocks)`` in a thread of its own while this coroutine feeds it ``chunks``.

    Returns when the upload finished; raises its error, or the error of ``chunks`` (a client that
    went away) after the upload has cleaned up.
    """
    loop = asyncio.get_running_loop()
    pipe = AsyncPipe(loop)
    done: asyncio.Future = loop.create_future()

    def settle(exc: BaseException | None) -> None:
        if done.done():
            return
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)

    def work() -> None:
        outcome: BaseException | None = None
        try:
            upload(pipe.blocks())
        except BaseException as exc:
            outcome = exc
        finally:
            pipe.consumer_done()
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:
            pass

    threading.Thread(target=work, name=f"mlflow-sftp-stream {name}", daemon=True).start()
    try:
        await pipe.feed(chunks)
    except asyncio.CancelledError:
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        raise
    except BaseException:
        # The consumer sees the abort, removes its part file and ends; wait for that, keep our error.
        await asyncio.wait({done})
        if not done.cancelled():
            done.exception()
        raise
    await done
