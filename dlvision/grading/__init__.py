"""The trusted grading harness.

Layers, from the student's side to the gradebook:

- :mod:`~dlvision.grading.sandbox`: the bubblewrap sandbox the student's kernel runs in;
- :mod:`~dlvision.grading.kernel_side` and :mod:`~dlvision.grading.wire`: what runs in that kernel on request,
  and the plain data that comes back, decoded safely;
- :mod:`~dlvision.grading.student`: the graders' handle on the kernel (the ``student`` fixture);
- :mod:`~dlvision.grading.runner`: pytest over a cell's grader files, in the trusted process;
- :mod:`~dlvision.grading.scoring` and :mod:`~dlvision.grading.report`: a cell's score and its readable report;
- :mod:`~dlvision.grading.preprocessor`: TrustedExecute, the nbgrader preprocessor that ties them together.

Graders import what they need from here.
"""
from dlvision.checks import expect_close
from dlvision.grading.expect import expect_implemented_without
from dlvision.grading.runner import gpu, points
from dlvision.grading.speed import speed_ratio
from dlvision.grading.student import StudentError

__all__ = ["expect_close", "expect_implemented_without", "gpu", "points", "speed_ratio", "StudentError"]
