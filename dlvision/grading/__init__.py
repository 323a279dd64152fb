"""The trusted grading harness.

Layers, from the student's side to the gradebook:

- :mod:`~dlvision.grading.files`: student files read and written as regular files, never through links;
- :mod:`~dlvision.grading.sandbox`: the bubblewrap sandbox the student's kernels run in;
- :mod:`~dlvision.grading.analysis` and :mod:`~dlvision.grading.submission`: the graded code, extracted from the
  notebook and checked on the trusted side (what it may use, what it reaches);
- :mod:`~dlvision.grading.kernel_side`, :mod:`~dlvision.grading.grading_kernel` and :mod:`~dlvision.grading.wire`:
  the grading kernel that holds the graded code, the trusted side's connection to it, and the plain data that
  comes back, decoded safely;
- :mod:`~dlvision.grading.student`: the graders' handle on the grading kernel (the ``student`` fixture);
- :mod:`~dlvision.grading.runner`: pytest over a cell's grader files, in the trusted process;
- :mod:`~dlvision.grading.scoring` and :mod:`~dlvision.grading.report`: a cell's score and its readable report;
- :mod:`~dlvision.grading.preprocessor`: TrustedExecute, the nbgrader preprocessor that ties them together.

Graders import what they need from here. The names load on first use (PEP 562): the student's grading kernel
imports :mod:`~dlvision.grading.kernel_side` through this package and needs none of the trusted side's
nbgrader and pytest, whose import would cost every submission seconds of CPU.
"""
from __future__ import annotations

import importlib

#: Each public name, and the module that defines it.
_EXPORTS = {
    "expect_close": "dlvision.checks",
    "StandInTensor": "dlvision.grading.device",
    "expect_keeps_device": "dlvision.grading.device",
    "expect_on_device": "dlvision.grading.device",
    "expect_implemented_without": "dlvision.grading.expect",
    "fresh_generator": "dlvision.grading.fresh",
    "fresh_seed": "dlvision.grading.fresh",
    "gpu": "dlvision.grading.runner",
    "points": "dlvision.grading.runner",
    "requires": "dlvision.grading.runner",
    "speed_ratio": "dlvision.grading.speed",
    "StudentError": "dlvision.grading.student",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
