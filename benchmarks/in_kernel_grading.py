"""The untrusted way, for benchmarks/autograde_overhead.py only: dlvision's own graders run inside the student's
kernel, on the live notebook namespace, as a plain nbgrader course would run hidden tests.

Nothing is sandboxed, serialised or judged apart from the student's code here: that is the point of the
comparison (the price of trust is dlvision's time minus this). Never use this to grade real submissions.
"""
from __future__ import annotations

import types
from pathlib import Path

import nbformat

from dlvision.grading import kernel_side
from dlvision.grading.cells import is_hidden_grade_cell
from dlvision.grading.grading_kernel import StudentError
from dlvision.grading.runner import grade_cell
from dlvision.grading.student import Student
from dlvision.grading.submission import contract_of, extract


class InProcessKernel:
    """What :class:`~dlvision.grading.student.Student` needs of a grading kernel, served in this process."""

    def __init__(self, graded, namespace: dict):
        self.graded, self.load_failures = graded, []
        module = types.ModuleType("submission")
        module.__dict__.update(namespace)
        kernel_side._STATE.update(module=module, contract=tuple(graded.contract), spec=None)

    def request(self, kind, name, args=(), kwargs=None, *, timeout=None, **extra):
        try:
            return kernel_side._plain(kernel_side._carry_out(
                {"kind": kind, "name": name, "args": tuple(args), "kwargs": dict(kwargs or {}), **extra}))
        except Exception as error:  # noqa: BLE001 - as the grading kernel reports a student's error
            raise StudentError(str(error), kernel_side.describe(error)) from None


def grade_here(course_root: str, grade_id: str, namespace: dict) -> None:
    """Run the graders of hidden cell ``grade_id`` on ``namespace`` (the notebook's globals); print the report and
    fail the cell unless it earns full points. The kernel's working folder is autograded/<student>/<assignment>."""
    root, here = Path(course_root), Path.cwd()
    assignment = here.name
    source = {p.name: nbformat.read(p, as_version=4) for p in (root / "source" / assignment).glob("*.ipynb")}
    release = {p.name: nbformat.read(p, as_version=4) for p in (root / "release" / assignment).glob("*.ipynb")}
    for name, nb in source.items():
        cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        if grade_id not in cells:
            continue
        solutions = {g: c.source for g, c in cells.items() if c.metadata.get("nbgrader", {}).get("solution")}
        stubs = {c.metadata.nbgrader.grade_id: c.source for c in release[name].cells
                 if c.metadata.get("nbgrader", {}).get("solution")}
        submitted = nbformat.read(here / name, as_version=4)
        hidden = {i for i, c in enumerate(submitted.cells) if is_hidden_grade_cell(c)}
        graded = extract(submitted.cells, contract_of(stubs, solutions), skip=hidden)
        report, score = grade_cell(cells[grade_id], Student(InProcessKernel(graded, namespace)), root)
        print(report)
        assert score >= float(cells[grade_id].metadata.nbgrader.points), f"{score:g} points"
        return
    raise LookupError(f"no cell {grade_id} in {assignment}")
