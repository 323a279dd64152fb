"""Speed as a ratio to a reference measured in the same run, on the trusted clock, on work that is checked.

For each measurement the grading kernel first makes ``number`` inputs that never repeat (from fresh seeds, with
the grader's ``make_inputs``); then one timed request calls the student's function on each of them and returns
a sample of every output. The trusted side times that request, runs the reference on the same inputs the same
way, and checks every sample: a result that is wrong, missing or thrown away fails the test, a cache of earlier
inputs never hits, and no probe the student could slow down is subtracted.
"""
from __future__ import annotations

import secrets
import time
from typing import Callable

import pytest
import torch

from dlvision.grading.device import expect_keeps_device, to_device
from dlvision.grading.kernel_side import sample_outputs
from dlvision.grading.student import Student

#: Entries of each output compared with the reference's.
POSITIONS = 16


def speed_ratio(student: Student, name: str, reference: Callable, make_inputs: Callable, *, device: str | None = None,
                repeats: int = 5, min_seconds: float = 0.2, rtol: float = 1e-4, atol: float = 1e-5) -> float:
    """The student's seconds per call of ``name`` over the reference's: the fastest of interleaved repeats of each.

    ``make_inputs(generator) -> (args, kwargs)`` is a top-level grader function; it runs in the grading kernel
    (for the student's calls) and here (for the reference's), so both see the same inputs. ``number``, the calls
    per request, is doubled until one request of the student's lasts ``min_seconds``, so that a request's own
    cost is small beside it. The reference runs on one thread (the kernel's share of a busy machine). Raises
    AssertionError if any sampled output differs from the reference's beyond ``rtol``/``atol``.

    With ``device`` (a ``gpu`` test) inputs and reference run there. Without CUDA, on the stand-in device, nothing
    can be timed: the function must run there and keep its outputs on the device, then the test is skipped.
    """
    if device and not torch.cuda.is_available():
        args, kwargs = make_inputs(torch.Generator().manual_seed(0))
        expect_keeps_device(student, name, *args, **kwargs)
        pytest.skip("timed only on a real GPU (on the stand-in device it runs and keeps its outputs there)")
    student = student.on(device) if device else student
    seeds = iter(range(secrets.randbelow(1 << 40), 1 << 62, 1 << 16))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        number = 1
        while _student_seconds(student, name, make_inputs, number, next(seeds), reference, rtol, atol)[0] \
                < min_seconds and number < 1 << 10:
            number *= 2
        theirs, ours = [], []
        for _ in range(repeats):
            seconds, inputs = _student_seconds(student, name, make_inputs, number, next(seeds), reference, rtol, atol)
            theirs.append(seconds / number)
            ours.append(_reference_seconds(reference, inputs, min_seconds))
    finally:
        torch.set_num_threads(threads)
    # Minima: the machine's noise can only slow a measurement down, never speed it up.
    return min(theirs) / max(min(ours), 1e-9)


def _reference_seconds(reference: Callable, inputs: list, min_seconds: float) -> float:
    """Seconds per call of the reference over the inputs, passed over as often as it takes to last ``min_seconds``
    (a short window is at the mercy of one preemption)."""
    passes, start = 0, time.perf_counter()
    while passes == 0 or time.perf_counter() - start < min_seconds:
        [sample_outputs(reference(*args, **kwargs), POSITIONS) for args, kwargs in inputs]
        passes += 1
    return (time.perf_counter() - start) / (passes * len(inputs))


def _student_seconds(student: Student, name: str, make_inputs: Callable, number: int, seed: int,
                     reference: Callable, rtol: float, atol: float) -> tuple[float, list]:
    """Seconds of one timed request of ``number`` calls, checked against the reference; and the trusted side's
    copy of those inputs (the reference's timing reuses them)."""
    student.prepare_inputs(make_inputs, number=number, seed=seed)
    start = time.perf_counter()
    samples = student.timed(name, positions=POSITIONS)
    seconds = time.perf_counter() - start
    inputs = _inputs(make_inputs, number, seed, student.device)
    expected = [sample_outputs(reference(*args, **kwargs), POSITIONS) for args, kwargs in inputs]
    if not isinstance(samples, list) or len(samples) != number:
        raise AssertionError(f"{name} did not return a result for each of the {number} inputs of the speed check.")
    for i, (got, want) in enumerate(zip(samples, expected)):
        if not _same(got, want, rtol, atol):
            raise AssertionError(f"{name} gave a wrong result on input {i + 1} of the speed check: speed counts "
                                 "only for correct results (see the other tests of this function).")
    return seconds, inputs


def _inputs(make_inputs: Callable, number: int, seed: int, device: str | None = None) -> list:
    inputs = [make_inputs(torch.Generator().manual_seed(seed + i)) for i in range(number)]
    return to_device(inputs, device) if device else inputs


def _same(got, want, rtol: float, atol: float) -> bool:
    if isinstance(want, torch.Tensor):
        return isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype and (
            torch.allclose(got, want, rtol=rtol, atol=atol) if want.is_floating_point() else torch.equal(got, want))
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(_same(g, w, rtol, atol)
                                                                       for g, w in zip(got, want))
    return got == want
