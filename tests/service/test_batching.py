"""Group commit (`service.batching.GroupCommit`): concurrent callers share batches and each gets
its own result or exception."""

from __future__ import annotations

import threading
from collections.abc import Hashable, Sequence

import pytest

from service.batching import GroupCommit


class Recorder:
    """A `process` that records its batches and, while `hold` is clear, blocks the leader so
    that the other callers queue up behind it."""

    def __init__(self) -> None:
        self.batches: list[tuple[Hashable, list[int]]] = []
        self.hold = threading.Event()
        self.entered = threading.Event()

    def __call__(self, key: Hashable, items: Sequence[int]) -> list[int | Exception]:
        self.batches.append((key, list(items)))
        self.entered.set()
        self.hold.wait(timeout=10)
        return [ValueError(f"bad {i}") if i < 0 else i * 10 for i in items]


def run_threads(committer: GroupCommit[int, int], items: list[tuple[int, Hashable]]) -> dict:
    results: dict[int, object] = {}

    def call(item: int, key: Hashable) -> None:
        try:
            results[item] = committer.submit(item, key=key)
        except Exception as exc:
            results[item] = exc

    threads = [threading.Thread(target=call, args=pair) for pair in items]
    for thread in threads:
        thread.start()
    return {"threads": threads, "results": results}


def start_blocked(committer: GroupCommit[int, int], recorder: Recorder) -> threading.Thread:
    """A first caller that leads a batch and stays in it until `recorder.hold` is set."""
    first = threading.Thread(target=committer.submit, args=(0,))
    first.start()
    assert recorder.entered.wait(timeout=10)
    return first


def wait_queued(committer: GroupCommit[int, int], count: int) -> None:
    for _ in range(1000):
        with committer._lock:
            if len(committer._queue) >= count:
                return
        threading.Event().wait(0.005)
    raise AssertionError(f"{count} callers never queued")


def test_a_lone_caller_is_processed_at_once_on_its_own_thread() -> None:
    seen: list[str] = []

    def process(key: Hashable, items: Sequence[int]) -> list[int]:
        seen.append(threading.current_thread().name)
        return [i + 1 for i in items]

    committer: GroupCommit[int, int] = GroupCommit(process)
    assert committer.submit(41) == 42
    assert seen == [threading.current_thread().name]
    assert (committer.batches, committer.items) == (1, 1)


def test_callers_waiting_behind_a_batch_form_the_next_one() -> None:
    recorder = Recorder()
    committer: GroupCommit[int, int] = GroupCommit(recorder, max_batch=64)
    first = start_blocked(committer, recorder)
    run = run_threads(committer, [(i, None) for i in range(1, 9)])
    wait_queued(committer, 8)
    recorder.hold.set()
    first.join(timeout=10)
    for thread in run["threads"]:
        thread.join(timeout=10)
    assert run["results"] == {i: i * 10 for i in range(1, 9)}
    assert [sorted(items) for _, items in recorder.batches] == [[0], list(range(1, 9))]


def test_an_exception_in_its_place_reaches_only_that_caller() -> None:
    recorder = Recorder()
    committer: GroupCommit[int, int] = GroupCommit(recorder)
    first = start_blocked(committer, recorder)
    run = run_threads(committer, [(1, None), (-2, None), (3, None)])
    wait_queued(committer, 3)
    recorder.hold.set()
    first.join(timeout=10)
    for thread in run["threads"]:
        thread.join(timeout=10)
    assert run["results"][1] == 10 and run["results"][3] == 30
    assert isinstance(run["results"][-2], ValueError)
    assert str(run["results"][-2]) == "bad -2"


def test_an_exception_raised_by_the_batch_reaches_every_caller_of_it() -> None:
    def process(key: Hashable, items: Sequence[int]) -> list[int]:
        raise ConnectionError("database down")

    committer: GroupCommit[int, int] = GroupCommit(process)
    with pytest.raises(ConnectionError, match="database down"):
        committer.submit(1)
    # the committer is not left busy: the next caller leads again
    committer._process = lambda key, items: list(items)
    assert committer.submit(5) == 5


def test_batches_respect_the_key_and_the_size_limit() -> None:
    recorder = Recorder()
    committer: GroupCommit[int, int] = GroupCommit(recorder, max_batch=3)
    first = start_blocked(committer, recorder)
    items = [(1, "a"), (2, "b"), (3, "a"), (4, "a"), (5, "a"), (6, "b")]
    run = run_threads(committer, items)
    wait_queued(committer, 6)
    recorder.hold.set()
    first.join(timeout=10)
    for thread in run["threads"]:
        thread.join(timeout=10)
    assert run["results"] == {i: i * 10 for i, _ in items}
    later = recorder.batches[1:]
    assert all(len(batch) <= 3 for _, batch in later)
    for key, batch in later:
        assert {k for i, k in items if i in batch} == {key}
    assert sorted(i for _, batch in later for i in batch) == [1, 2, 3, 4, 5, 6]


def test_a_result_count_mismatch_is_an_error_for_every_caller() -> None:
    committer: GroupCommit[int, int] = GroupCommit(lambda key, items: [])
    with pytest.raises(RuntimeError, match="0 results for a batch of 1"):
        committer.submit(1)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(lambda key, items: list(items), max_batch=0)
