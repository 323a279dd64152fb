"""The graders' handle on the student's graded code (the ``student`` fixture).

Every call goes to the grading kernel and only plain data comes back (see :mod:`~dlvision.grading.wire`);
static questions (what a name reaches, why a name was not graded) are answered on the trusted side from the
submitted source.
"""
from __future__ import annotations

import inspect
import textwrap
from typing import Callable

from dlvision.grading.analysis import Facts
from dlvision.grading.device import from_wire
from dlvision.grading.grading_kernel import GraderError, GradingKernel, StudentError
from dlvision.grading.report import describe_error

__all__ = ["GraderError", "Student", "StudentError"]


class Student:
    """Calls into the student's graded code.

    ``student.softmax(x, dim=-1)`` calls the student's ``softmax`` in the grading kernel and returns its result;
    ``student.run(scenario, ...)`` sends a grader-defined function and runs it there. Only the contract names
    (the names the notebook's solution cells define) can be reached.
    """

    def __init__(self, kernel: GradingKernel, device: str | None = None, gpu_machine: bool = False):
        self._kernel = kernel
        self._device = {"device": device, "gpu_machine": gpu_machine} if device or gpu_machine else {}

    def on(self, device: str | None, *, gpu_machine: bool = False) -> "Student":
        """The same student, with every call's tensor arguments moved to ``device`` (``"cuda"``), and, with
        ``gpu_machine``, as on a machine with a GPU. Without CUDA both run on the stand-in device (see
        :mod:`~dlvision.grading.device`), whose results are StandInTensor (no values) or Inconclusive."""
        return Student(self._kernel, device, gpu_machine)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call("call", name, args, kwargs)

    def run(self, scenario: Callable, *args, timeout: float | None = None, **kwargs):
        """Run the top-level grader function ``scenario`` in the grading kernel and return its result.

        The scenario sees pristine builtins and the student's contract names (``Linear``, ``softmax``...), nothing
        else of theirs; it imports what else it needs in its body.
        """
        return self._call("scenario", scenario.__name__, args, kwargs, timeout=timeout, source=source_of(scenario))

    def value(self, name: str):
        """The value of the contract name ``name`` (e.g. a multiple-choice ``answer``)."""
        return self._call("value", name, (), {})

    def calls(self, name: str, *args, **kwargs) -> tuple[object, set[str]]:
        """``(result, torch functions called)``: ``name(*args, **kwargs)`` with every public torch function it
        calls recorded. The record comes from the kernel, so it may only ever fail a test."""
        got = self._call("call", name, args, kwargs, record_calls=True)
        if not isinstance(got, dict) or not isinstance(got.get("torch_calls"), list):
            raise StudentError("the record of the torch functions your code called did not come back.")
        return got.get("result"), {c for c in got["torch_calls"] if isinstance(c, str)}

    def prepare_inputs(self, make_inputs: Callable, *, number: int, seed: int) -> None:
        """Have the grading kernel make ``number`` inputs with ``make_inputs`` (seeds ``seed``, ``seed + 1``...)
        for the next :meth:`timed` request."""
        self._kernel.request("prepare", "", source=source_of(make_inputs), make_inputs=make_inputs.__name__,
                             number=number, seed=seed, **self._device)

    @property
    def device(self) -> str | None:
        """The device this view moves tensor arguments to (None: where they are)."""
        return self._device.get("device")

    def timed(self, name: str, *, positions: int) -> list:
        """Samples of ``name``'s outputs on the prepared inputs, in one request (see speed)."""
        return self._call("timed", name, (), {}, positions=positions)

    def reach(self, name: str) -> Facts:
        """What ``name``'s code reaches (library paths, attribute names, globals), through its helpers."""
        return self._kernel.graded.reach(name)

    def not_graded(self, name: str) -> str | None:
        """Why the contract name ``name`` was left out of the graded code, or None if it was loaded."""
        return self._kernel.graded.excluded.get(name)

    @property
    def graded(self):
        return self._kernel.graded

    def _call(self, kind: str, name: str, args: tuple, kwargs: dict, *, timeout: float | None = None, **extra):
        if kind != "scenario" and name not in self.graded.contract:
            raise GraderError(f"the graders call {name!r}, which no solution cell of the notebook defines "
                              f"(contract names: {', '.join(sorted(self.graded.contract)) or 'none'}).")
        if kind != "scenario" and self.not_graded(name):
            raise StudentError(self.not_graded(name))
        try:
            result = self._kernel.request(kind, name, args, kwargs, timeout=timeout, **self._device, **extra)
            return from_wire(result) if self._device else result
        except StudentError as error:
            if error.error is None:
                raise
            described = StudentError(describe_error(error.error, self.graded, self._kernel.load_failures))
            # the kernel's own words, never shown (they may carry the grader's inputs) and forgeable: only a check
            # that the student fails may use them (expect_keeps_device recognises a device error by them)
            described.kernel_message = str(error.error.get("message", ""))
            raise described from None


def source_of(function: Callable) -> str:
    """The source of a top-level grader function, dedented, to be run in the grading kernel."""
    return textwrap.dedent(inspect.getsource(function))
