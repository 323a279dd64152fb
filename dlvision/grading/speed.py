"""Speed as a ratio to a reference measured in the same run, on the trusted clock."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

from dlvision.grading.student import Student


def speed_ratio(student: Student, name: str, reference: Callable, *args, repeats: int = 5,
                min_seconds: float = 0.2, **kwargs) -> float:
    """The student's seconds per call of ``name`` over the reference's: medians of interleaved repeats.

    The student's time is a request that calls ``name`` ``number`` times in the kernel, less a request that
    calls a no-op the same way (the cost of a request and its arguments). ``number`` is doubled until one
    request of the student's calls lasts ``min_seconds``, so that the request's own cost and jitter are small
    beside it. The reference runs in the trusted process on one thread (the kernel's share of a busy machine),
    with the same ``number``. Neither clock is in the student's hands.
    """
    student.run(_warm_up, name, *args, **kwargs)
    number = 1
    while student.seconds(name, *args, number=number, **kwargs) < min_seconds and number < 1 << 16:
        number *= 2
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference(*args, **kwargs)
        theirs, ours = [], []
        for _ in range(repeats):
            call = student.seconds(name, *args, number=number, **kwargs)
            noop = _seconds(lambda: student.run(_call_noop, number, *args, **kwargs))
            theirs.append(max(call - noop, 1e-9) / number)
            ours.append(_seconds(lambda: [reference(*args, **kwargs) for _ in range(number)]) / number)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(theirs) / max(statistics.median(ours), 1e-9)


def _seconds(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _warm_up(name, *args, **kwargs):
    globals()[name](*args, **kwargs)


def _call_noop(number, *args, **kwargs):
    def noop(*args, **kwargs):
        return None

    for _ in range(number):
        noop(*args, **kwargs)
