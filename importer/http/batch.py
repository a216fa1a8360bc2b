"""Look-ups asked at the same time, answered by one statement: the read side of the audit writer's group commit.

A look-up reads one indexed row. Handed to a thread one by one, each paid for a thread hand-off, a statement and a
round trip to the database, and for the threads taking turns at the interpreter (about 18 futex calls a look-up
under load): more than the read itself. A `Batcher` has one reading thread per process and kind of look-up. It
takes every key waiting, reads them all with one statement (`read`: keys to values, one per key), and wakes each
event loop once for all of them; keys that arrive meanwhile wait for the next read. An error in a read fails every
look-up of that read (the façades answer 503), none is answered from another's data: each gets the value of its
own key.
"""

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# At most this many keys go into one read; more wait for the next.
BATCH_KEYS = 256
# The reading thread ends after this long without a look-up, and the next look-up starts another.
IDLE_S = 5.0


class Batcher(Generic[K, V]):
    """`get(key)` for the event loop, read together with every other key asked meanwhile."""

    def __init__(self, read: Callable[[Sequence[K]], Mapping[K, V]], name: str) -> None:
        self._read = read
        self._name = name
        self._waiting: queue.SimpleQueue[tuple[K, asyncio.Future[V]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    async def get(self, key: K) -> V:
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._waiting.put((key, future))
        with self._lock:
            if self._reader is None or not self._reader.is_alive():
                self._reader = threading.Thread(target=self._read_batches, name=self._name, daemon=True)
                self._reader.start()
        return await future

    def _read_batches(self) -> None:
        while True:
            try:
                first = self._waiting.get(timeout=IDLE_S)
            except queue.Empty:
                with self._lock:
                    if self._waiting.empty():  # a look-up queued after the timeout finds no reader and starts one
                        self._reader = None
                        return
                continue
            batch = [first]
            while len(batch) < BATCH_KEYS:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            self._answer(batch)

    def _answer(self, batch: list[tuple[K, "asyncio.Future[V]"]]) -> None:
        keys = list(dict.fromkeys(key for key, _ in batch))
        try:
            values = self._read(keys)
            outcome: tuple[Mapping[K, V] | None, BaseException | None] = (values, None)
        except BaseException as error:  # every look-up of this read fails: none is answered
            outcome = (None, error)
        waiting: dict[asyncio.AbstractEventLoop, list[tuple[K, asyncio.Future[V]]]] = {}
        for key, future in batch:
            waiting.setdefault(future.get_loop(), []).append((key, future))
        for loop, futures in waiting.items():
            with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody is left to tell
                loop.call_soon_threadsafe(_settle, futures, *outcome)


def _settle(futures: "list[tuple[K, asyncio.Future[V]]]", values: Mapping[K, V] | None,
            error: BaseException | None) -> None:
    for key, future in futures:
        if future.done():  # cancelled: its client went away
            continue
        if values is None:
            future.set_exception(error or RuntimeError("the read gave no values"))
        elif key not in values:
            future.set_exception(KeyError(f"the read gave no value for a key ({type(key).__name__})"))
        else:
            future.set_result(values[key])
