"""Speed as a ratio to a reference measured in the same run, on the trusted clock."""
from __future__ import annotations

import statistics
import time
from typing import Callable

from dlvision.grading.student import Student


def speed_ratio(student: Student, name: str, reference: Callable, *args, number: int = 5, repeats: int = 5,
                **kwargs) -> float:
    """The student's seconds per call of ``name`` over the reference's, medians of interleaved repeats.

    The student's time is a request that calls ``name`` ``number`` times in the kernel, less a request that
    calls a no-op the same way (the cost of shipping the arguments); the reference runs in the trusted
    process on the same machine. Neither clock is in the student's hands.
    """
    student.run(_warm_up, name, *args, **kwargs)
    reference(*args, **kwargs)
    theirs, ours = [], []
    for _ in range(repeats):
        call = student.seconds(name, *args, number=number, **kwargs)
        noop = _noop_seconds(student, args, kwargs, number)
        theirs.append(max(call - noop, 1e-9) / number)
        start = time.perf_counter()
        for _ in range(number):
            reference(*args, **kwargs)
        ours.append((time.perf_counter() - start) / number)
    return statistics.median(theirs) / max(statistics.median(ours), 1e-9)


def _warm_up(name, *args, **kwargs):
    globals()[name](*args, **kwargs)


def _noop_seconds(student: Student, args: tuple, kwargs: dict, number: int) -> float:
    start = time.perf_counter()
    student.run(_call_noop, number, *args, **kwargs)
    return time.perf_counter() - start


def _call_noop(number, *args, **kwargs):
    def noop(*args, **kwargs):
        return None

    for _ in range(number):
        noop(*args, **kwargs)
