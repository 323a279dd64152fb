"""TrustedExecute: nbgrader's Execute with a sandboxed kernel and hidden grade cells scored by trusted graders.

Set in nbgrader_config.py as ``c.Autograde.autograde_preprocessors`` in place of ``Execute``. Student cells
run in the sandboxed kernel as usual. A hidden grade cell is not run there: the graders it declares run in
this process against the live kernel, and this preprocessor writes the cell's outputs (a report on stdout and
the score as the execute result), which nbgrader's SaveAutoGrades, formgrader and feedback then use unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Enum, Integer, List, Type, Unicode, default

from dlvision.grading.cells import declared_graders, is_hidden_grade_cell
from dlvision.grading.report import format_report
from dlvision.grading.runner import GraderError, run_graders
from dlvision.grading.sandbox import SandboxedKernelManager
from dlvision.grading.scoring import SKIPPED_POLICIES, cell_score
from dlvision.grading.student import Student, StudentError
from dlvision.grading.wire import REPLY_MIME

KERNEL_RESTARTED = ("The kernel was restarted: this cell {why}. Everything defined before it is lost, so "
                    "later cells run in a fresh kernel.")


class TrustedExecute(Execute):
    """Execute student cells in the sandbox; score hidden grade cells with trusted graders."""

    kernel_manager_class = Type(SandboxedKernelManager, klass=SandboxedKernelManager).tag(config=True)
    course_root = Unicode(help="The folder that grader paths are relative to (default: the working folder).").tag(
        config=True)
    call_timeout = Integer(30, help="Seconds a grader's single call into the student's kernel may take.").tag(
        config=True)
    max_output_chars = Integer(200_000, help="Characters of output a cell may produce before the rest is dropped.").tag(
        config=True)
    max_reply_bytes = Integer(256 << 20, help="Bytes a reply from the student's kernel may hold.").tag(config=True)
    skipped_tests = Enum(SKIPPED_POLICIES, "exclude", help=(
        "How skipped grader tests (gpu tests where grading has no CUDA device) count: 'exclude' leaves them out "
        "of the cell's fraction, 'forfeit' counts them as failed.")).tag(config=True)
    only_cells = List(Unicode(), help="If set, grade only these hidden cells (by grade_id); the others score 0.").tag(
        config=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)  # Execute would set a plain one
        super().__init__(**kwargs)

    @default("course_root")
    def _course_root_default(self) -> str:
        return str(Path.cwd())

    def preprocess_cell(self, cell, resources, index):
        self._output_chars = 0
        if is_hidden_grade_cell(cell):
            return self._grade_hidden_cell(cell, index), resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError) as error:
            why = "ignored the interrupt after its time limit" if isinstance(error, CellTimeoutError) else \
                "stopped the kernel (os._exit, a crash, or the memory limit)"
            self._restart_kernel()
            cell.outputs.append(nbformat.v4.new_output("error", ename=type(error).__name__, evalue=why,
                                                       traceback=[KERNEL_RESTARTED.format(why=why)]))
            self.nb.cells[index] = cell
            return cell, resources

    def output(self, outs, msg, display_id, cell_index):
        """Keep a cell's output under ``max_output_chars``; replies to the graders are never dropped."""
        content = msg.get("content", {})
        if REPLY_MIME in content.get("data", {}):
            return super().output(outs, msg, display_id, cell_index)
        size = len(json.dumps(content, default=str))
        self._output_chars = getattr(self, "_output_chars", 0) + size
        if self._output_chars > self.max_output_chars:
            if self._output_chars - size <= self.max_output_chars:
                outs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                    f"\n[dlvision: output truncated after {self.max_output_chars:,} characters]\n")))
            return None
        return super().output(outs, msg, display_id, cell_index)

    def _grade_hidden_cell(self, cell, index):
        grade_id = cell.metadata.nbgrader.get("grade_id", "")
        cell_points = float(cell.metadata.nbgrader.get("points", 0))
        paths = [Path(self.course_root) / p for p in declared_graders(cell)]
        if self.only_cells and grade_id not in self.only_cells:
            text, score = "Not graded in this run.\n", 0.0
        elif not paths:
            raise GraderError(f"hidden cell {grade_id} declares no graders (`dlvision build` would have said so)")
        else:
            code_cells = [c.source for c in self.nb.cells if c.cell_type == "code" and not is_hidden_grade_cell(c)]
            student = Student(lambda code, timeout: self._run_for_grader(code, timeout, index), code_cells,
                              timeout=self.call_timeout, max_reply_bytes=self.max_reply_bytes)
            # A GraderError (a grader that does not import, a test without points) is the course's bug: it
            # fails this submission loudly rather than scoring it 0.
            results = run_graders(paths, student, cuda=_cuda_available())
            score = cell_score(results, cell_points, self.skipped_tests)
            text = format_report(results, score, cell_points)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text),
                        nbformat.v4.new_output("execute_result", data={"text/plain": f"{score:g}"},
                                               execution_count=None)]
        self.nb.cells[index] = cell
        return cell

    def _run_for_grader(self, code: str, timeout: float, index: int) -> list:
        """Run grader-sent code in the kernel and return its outputs (never stored in the notebook)."""
        probe = nbformat.v4.new_code_cell(code)
        saved_cell, saved_timeout = self.nb.cells[index], self.timeout
        self.timeout, self._output_chars = int(max(1, timeout)), 0
        try:
            self.execute_cell(probe, index, store_history=False)
        except (CellTimeoutError, DeadKernelError) as error:
            self._restart_kernel()
            raise StudentError("your code did not return and ignored the interrupt, so the kernel was restarted."
                               if isinstance(error, CellTimeoutError) else
                               "the kernel died (os._exit, a crash, or the memory limit) and was restarted.") from None
        finally:
            self.nb.cells[index], self.timeout = saved_cell, saved_timeout
        return probe.outputs

    def _restart_kernel(self) -> None:
        self.log.warning("Restarting the student's kernel.")
        run_sync(self.km.restart_kernel)(now=True)
        run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
