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
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

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
            values, error = self._read(keys), None
        except BaseException as failure:  # every look-up of this read fails: none is answered
            values, error = {}, failure
        settle_on_their_loops(
            (future, None, error) if error is not None
            else (future, values[key], None) if key in values
            else (future, None, KeyError(f"the read gave no value for a key ({type(key).__name__})"))
            for key, future in batch)


def settle_on_their_loops(outcomes: "Iterable[tuple[asyncio.Future[T], T | None, BaseException | None]]") -> None:
    """From a worker thread: each future given its value, or its error where there is one, on its own event loop,
    which is woken once for all of its futures. A future already done (cancelled: its client went away) is left
    alone, and so is a loop closed meanwhile (nobody is left to tell)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[T], T | None, BaseException | None]]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, group)


def _settle(group: "list[tuple[asyncio.Future[T], T | None, BaseException | None]]") -> None:
    for future, value, error in group:
        if future.done():
            continue
        if error is None:
            future.set_result(value)  # type: ignore[arg-type]
        else:
            future.set_exception(error)
