"""Grading a notebook's hidden cells directly, for proving graders quickly: the same graded code, grading kernel
and graders as TrustedExecute, without nbgrader, a gradebook or a notebook kernel, in one grading kernel that is
reused from notebook to notebook (each gets a fresh module and a fresh time budget).

It serves `dlvision selftest` (its mutants and hollow stubs) and `dlvision mutate`, never students: it takes the
notebook's cell roles as they are (there is no gradebook to restore them from), grades with the source
notebook's hidden cells (as nbgrader restores them) and runs none of the notebook's cells for outputs.
tests/test_direct.py shows that it gives the same verdicts as nbgrader's autograde on every named mutant.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from dlvision.grading.cells import is_hidden_grade_cell
from dlvision.grading.grading_kernel import GradingKernel
from dlvision.grading.runner import grade_cell
from dlvision.grading.sandbox import SandboxedKernelManager
from dlvision.grading.student import Student
from dlvision.grading.submission import contract_of, extract


class DirectGrader:
    """Grades notebooks of one assignment. ``release`` and ``source``: its released and source notebooks (their
    stubs and solutions give the contract)."""

    def __init__(self, course_root: Path, release: nbformat.NotebookNode, source: nbformat.NotebookNode, *,
                 call_timeout: float = 30, budget: float = 300, stand_in: bool = False,
                 max_reply_bytes: int = 256 << 20):
        self.course_root = Path(course_root)
        self.contract = contract_of(_solution_cells(release), _solution_cells(source))
        self._hidden = {c.metadata.nbgrader.grade_id: c for c in source.cells if is_hidden_grade_cell(c)}
        self.stand_in = stand_in
        self._settings = dict(call_timeout=call_timeout, budget=budget, max_reply_bytes=max_reply_bytes)
        self._kernel: GradingKernel | None = None

    def grade(self, nb: nbformat.NotebookNode, only: set[str] | None = None) -> dict[str, tuple[float, float, str]]:
        """``{hidden cell grade id: (score, points, report)}``, for the cells in ``only`` (all if None)."""
        hidden = {i: c for i, c in enumerate(nb.cells) if is_hidden_grade_cell(c)}
        graded = extract(nb.cells, self.contract, skip=set(hidden))
        if self._kernel is None:
            self._kernel = GradingKernel(graded, lambda: SandboxedKernelManager(kernel_name="python3"),
                                         **self._settings).ready()
        else:
            self._kernel.reload(graded)
        student = Student(self._kernel)
        scores = {}
        for cell in hidden.values():
            grade_id = cell.metadata.nbgrader.grade_id
            cell = self._hidden.get(grade_id, cell)
            if only is None or grade_id in only:
                report, score = grade_cell(cell, student, self.course_root, stand_in=self.stand_in)
                scores[grade_id] = (score, float(cell.metadata.nbgrader.points), report)
        return scores

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.shutdown()
            self._kernel = None


def _solution_cells(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
