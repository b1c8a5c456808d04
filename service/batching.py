"""Group commit: callers on many threads hand over one item each; one of them processes all the
items waiting at that moment in one batch, and each caller gets its own result.

There is no thread of its own and no timer: the first caller to find the committer idle becomes
the leader, takes what is queued (its own item included, at most `max_batch`), processes it on
its own thread and wakes the callers of that batch. Items that arrived meanwhile form the next
batch, led by the oldest of their callers. Alone, a caller processes its item at once, so
nothing waits for a batch to fill; under load, batches grow by themselves with the number of
callers waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

__all__ = ["GroupCommit"]

Item = TypeVar("Item")
Result = TypeVar("Result")

_PENDING = object()


class _Slot(Generic[Item, Result]):
    __slots__ = ("item", "key", "outcome", "wake")

    def __init__(self, item: Item, key: Hashable) -> None:
        self.item = item
        self.key = key
        self.outcome: object = _PENDING
        self.wake = threading.Event()
        """Set once: when the outcome is in, or when this caller is to lead the next batch."""


class GroupCommit(Generic[Item, Result]):
    """Batches `submit` calls from concurrent threads into calls of `process(key, items)`.

    `process` returns one result per item, or an exception in an item's place; an exception it
    raises goes to every caller of that batch. Only items submitted with equal keys (the
    database and settings they run under, say) share a batch.

    Each waiting caller sleeps on its own event and is woken once, when its result is in or
    when it is to lead the next batch: a shared condition woken for all would have every
    waiting thread compete for the GIL with the leader after each batch (at 64 threads that
    cost more CPU than the batching saved).
    """

    def __init__(
        self,
        process: Callable[[Hashable, Sequence[Item]], Sequence[Result | Exception]],
        *,
        max_batch: int = 64,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._process = process
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Slot[Item, Result]] = []
        self._busy = False  # a leader is running; then the queue's head is its next batch's
        self.batches = 0
        self.items = 0

    def submit(self, item: Item, *, key: Hashable = None) -> Result:
        """Process `item` (with others waiting, in one batch) and return its result."""
        slot: _Slot[Item, Result] = _Slot(item, key)
        with self._lock:
            self._queue.append(slot)
            # When no leader runs the queue is empty, so this slot is its head.
            leading = not self._busy
            self._busy = True
        if not leading:
            slot.wake.wait()
        if slot.outcome is _PENDING:  # this caller leads; its slot heads the queue
            self._lead()
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome  # type: ignore[return-value]

    def _lead(self) -> None:
        """Run the batch at the head of the queue, then hand the lead to the next waiting
        caller (or go idle)."""
        with self._lock:
            batch = self._take()
        try:
            self._run(batch)
        finally:
            for slot in batch:
                slot.wake.set()
            with self._lock:
                if self._queue:
                    self._queue[0].wake.set()
                else:
                    self._busy = False

    def _take(self) -> list[_Slot[Item, Result]]:
        """The oldest waiting slots with the oldest one's key (called holding the lock)."""
        key = self._queue[0].key
        batch: list[_Slot[Item, Result]] = []
        rest: list[_Slot[Item, Result]] = []
        for slot in self._queue:
            if slot.key == key and len(batch) < self.max_batch:
                batch.append(slot)
            else:
                rest.append(slot)
        self._queue = rest
        return batch

    def _run(self, batch: list[_Slot[Item, Result]]) -> None:
        """Process a batch; every slot gets a result or an exception, whatever happens."""
        self.batches += 1
        self.items += len(batch)
        try:
            results = self._process(batch[0].key, [slot.item for slot in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
        except BaseException as exc:
            for slot in batch:
                slot.outcome = exc
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: the leader stops too
            return
        for slot, result in zip(batch, results, strict=True):
            slot.outcome = result
