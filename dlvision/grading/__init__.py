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

Graders import what they need from here.
"""
from dlvision.checks import expect_close
from dlvision.grading.device import StandInTensor, expect_keeps_device, expect_on_device
from dlvision.grading.expect import expect_implemented_without
from dlvision.grading.fresh import fresh_generator, fresh_seed
from dlvision.grading.runner import gpu, points, requires
from dlvision.grading.speed import speed_ratio
from dlvision.grading.student import StudentError

__all__ = ["expect_close", "expect_implemented_without", "expect_keeps_device", "expect_on_device", "fresh_generator",
           "fresh_seed", "gpu", "points", "requires", "speed_ratio", "StandInTensor", "StudentError"]
