"""TrustedExecute: nbgrader's Execute with sandboxed kernels, and hidden grade cells scored by trusted graders.

Set in nbgrader_config.py as ``c.Autograde.autograde_preprocessors`` in place of ``Execute``. It works in two
kernels, both sandboxed:

1. The *notebook kernel* runs the student's cells, in order, for the outputs a TA reads (output capped, cells
   timed, the whole notebook within a budget). Hidden grade cells are not run there, and no grader content is
   ever sent to it.
2. The *grading kernel* loads only the graded code (see :mod:`~dlvision.grading.submission`). After the whole
   notebook has run, the graders of each hidden cell run in this process and call into it.

Only then does this preprocessor write each hidden cell's outputs: the report and the score. They are the last
word: nothing the kernels send can reach them, and every hidden cell gets a numeric score (never nbgrader's
default of full marks for a grade cell without one). nbgrader's SaveAutoGrades, formgrader and feedback use
them unchanged.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
from jupyter_core.utils import run_sync
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import Execute
from traitlets import Bool, Enum, Float, Integer, List, Type, Unicode, default

from dlvision.grading.cells import is_hidden_grade_cell
from dlvision.grading.grading_kernel import GradingKernel
from dlvision.grading.runner import grade_cell
from dlvision.grading.sandbox import MessageTooLarge, SandboxedKernelManager
from dlvision.grading.scoring import SKIPPED_POLICIES
from dlvision.grading.student import Student
from dlvision.course import CourseError, read_notebook
from dlvision.grading.submission import contract_of, extract

KERNEL_RESTARTED = ("The kernel was restarted: this cell {why}. Everything defined before it is lost, so "
                    "later cells run in a fresh kernel.")
#: Output types kept from the student's kernel; scripts never reach the autograded notebook or the feedback.
_DROPPED_MIME = ("application/javascript", "text/javascript", "application/vnd.jupyter.widget-view+json")
_SCRIPT = re.compile(r"<\s*script\b.*?(<\s*/\s*script\s*>|$)|\bon\w+\s*=|javascript:", re.IGNORECASE | re.DOTALL)


class TrustedExecute(Execute):
    """Run student cells in the sandboxed notebook kernel; score hidden grade cells with trusted graders."""

    kernel_manager_class = Type(SandboxedKernelManager, klass=SandboxedKernelManager).tag(config=True)
    course_root = Unicode(help="The folder that grader paths are relative to (default: the working folder).").tag(
        config=True)
    call_timeout = Integer(30, help="Seconds a grader's single call into the student's code may take.").tag(
        config=True)
    notebook_budget = Float(300, help=("Seconds all of the student's cells together may run; cells left when it "
                                       "runs out are not run.")).tag(config=True)
    grading_budget = Float(300, help=("Seconds all grader calls into the student's code together may take; checks "
                                      "left when it runs out fail and say so.")).tag(config=True)
    max_output_chars = Integer(200_000, help="Characters of output a cell may produce before the rest is dropped.").tag(
        config=True)
    max_notebook_output_chars = Integer(5_000_000, help="Characters of output all cells together may produce.").tag(
        config=True)
    max_reply_bytes = Integer(256 << 20, help="Bytes a reply from the student's code may hold.").tag(config=True)
    skipped_tests = Enum(SKIPPED_POLICIES, "exclude", help=(
        "How skipped grader tests (gpu tests where grading has no CUDA device) count: 'exclude' leaves them out "
        "of the cell's fraction, 'forfeit' counts them as failed.")).tag(config=True)
    only_cells = List(Unicode(), help="If set, grade only these hidden cells (by grade_id); the others score 0.").tag(
        config=True)
    gpu_stand_in = Bool(False, help=("Without CUDA, run `gpu` tests on the stand-in device instead of skipping them "
                                     "(dlvision selftest does, to prove them); their results say so.")).tag(config=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)  # Execute would set a plain one
        super().__init__(**kwargs)

    @default("course_root")
    def _course_root_default(self) -> str:
        return str(Path.cwd())

    # --- the whole notebook ---------------------------------------------------------------------------------

    def preprocess(self, nb, resources, km=None):
        hidden = {index: cell for index, cell in enumerate(nb.cells) if is_hidden_grade_cell(cell)}
        graded = extract(nb.cells, self._contract(nb, resources), skip=set(hidden))
        grading = GradingKernel(graded, self._grading_manager, call_timeout=self.call_timeout,
                                budget=self.grading_budget, max_reply_bytes=self.max_reply_bytes,
                                startup_timeout=self.startup_timeout)
        try:
            self._notebook_deadline = time.monotonic() + self.notebook_budget
            self._notebook_output = 0
            nb, resources = super().preprocess(nb, resources, km=km)
            student = Student(grading.ready())
            graded_outputs = {index: self._grade_hidden_cell(cell, student) for index, cell in hidden.items()}
        finally:
            grading.shutdown()
        scores = {}
        for index, (outputs, score) in graded_outputs.items():  # written last: nothing can change them now
            nb.cells[index].outputs = outputs
            scores[nb.cells[index].metadata.nbgrader.grade_id] = score
        resources.setdefault("dlvision", {})["scores"] = scores
        return nb, resources

    def _grading_manager(self) -> SandboxedKernelManager:
        return self.kernel_manager_class(kernel_name="python3", config=self.config)

    def _contract(self, nb, resources) -> dict[str, list[str]]:
        """``{solution cell grade id: its contract names}`` (see submission.contract_of), from the released stubs
        in the gradebook and the solutions in the course's source notebook; from the notebook itself where there
        is no gradebook, as in the harness's own tests."""
        info = resources.get("nbgrader", {})
        if info.get("db_url"):
            try:
                with Gradebook(info["db_url"]) as gb:
                    source_nb = gb.find_notebook(info["notebook"], info["assignment"])
                    solutions = {c.name for c in source_nb.solution_cells}
                    stubs = {c.name: c.source for c in source_nb.source_cells
                             if c.name in solutions and c.cell_type == "code"}
                return contract_of(stubs, self._solutions(info["assignment"], info["notebook"]))
            except MissingEntry:
                pass
        cells = {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
                 if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
        return contract_of(cells, cells)

    def _solutions(self, assignment: str, notebook: str) -> dict[str, str]:
        """The source notebook's solution cells (empty if it cannot be read)."""
        try:
            nb = read_notebook(Path(self.course_root) / "source" / assignment / f"{notebook}.ipynb")
        except CourseError:
            return {}
        return {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
                if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}

    # --- student cells, in the notebook kernel -------------------------------------------------------------

    def preprocess_cell(self, cell, resources, index):
        self._output_chars = 0
        if is_hidden_grade_cell(cell):
            cell.outputs = []
            return cell, resources
        left = self._notebook_deadline - time.monotonic()
        if cell.cell_type == "code" and left <= 1:
            cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=(
                "[dlvision: not run: the notebook's time budget of "
                f"{self.notebook_budget:g} s ran out before this cell]\n"))]
            return cell, resources
        saved = self.timeout
        self.timeout = int(max(1, min(self.timeout or left, left)))
        try:
            return super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError, MessageTooLarge) as error:
            why = {CellTimeoutError: "ignored the interrupt after its time limit",
                   MessageTooLarge: f"sent {error}, more than a cell may"}.get(
                type(error), "stopped the kernel (os._exit, a crash, or the memory limit)")
            self._restart_kernel()
            cell.outputs.append(nbformat.v4.new_output("error", ename=type(error).__name__, evalue=why,
                                                       traceback=[KERNEL_RESTARTED.format(why=why)]))
            self.nb.cells[index] = cell
            return cell, resources
        finally:
            self.timeout = saved

    def output(self, outs, msg, display_id, cell_index):
        """Keep a cell's output (and the notebook's) under their caps, without scripts."""
        content = msg.get("content", {})
        for key in ("data", "metadata"):
            if isinstance(content.get(key), dict):
                for mime in _DROPPED_MIME:
                    content[key].pop(mime, None)
        html = content.get("data", {}).get("text/html") if isinstance(content.get("data"), dict) else None
        if isinstance(html, (str, list)):
            content["data"]["text/html"] = _SCRIPT.sub("", "".join(html) if isinstance(html, list) else html)
        if not self._within_caps(outs, len(json.dumps(content, default=str))):
            return None
        return super().output(outs, msg, display_id, cell_index)

    def on_cell_executed(self, **kwargs):
        """nbgrader adds the reply's error to a cell whose error output was dropped; keep that one small too."""
        super().on_cell_executed(**kwargs)
        cell = kwargs["cell"]
        if cell.outputs and cell.outputs[-1].get("output_type") == "error":
            error = cell.outputs[-1]
            error.ename, error.evalue = str(error.get("ename", ""))[:200], str(error.get("evalue", ""))[:1000]
            error.traceback = [str(line)[:1000] for line in error.get("traceback", [])][-20:]

    def _within_caps(self, outs, size: int) -> bool:
        self._output_chars = getattr(self, "_output_chars", 0) + size
        self._notebook_output = getattr(self, "_notebook_output", 0) + size
        if self._output_chars <= self.max_output_chars and self._notebook_output <= self.max_notebook_output_chars:
            return True
        if not getattr(self, "_truncation_noted", None) == (id(outs)):
            self._truncation_noted = id(outs)
            outs.append(nbformat.v4.new_output("stream", name="stdout", text=(
                f"\n[dlvision: output truncated after {min(self.max_output_chars, self.max_notebook_output_chars):,} "
                "characters]\n")))
        return False

    def _restart_kernel(self) -> None:
        self.log.warning("Restarting the student's kernel.")
        run_sync(self.km.restart_kernel)(now=True)
        run_sync(self.kc.wait_for_ready)(timeout=self.startup_timeout)

    # --- hidden cells, graded in this process ---------------------------------------------------------------

    def _grade_hidden_cell(self, cell, student: Student) -> tuple[list, float]:
        grade_id = cell.metadata.nbgrader.get("grade_id", "")
        if self.only_cells and grade_id not in self.only_cells:
            text, score = "Not graded in this run.\n", 0.0
        else:
            text, score = grade_cell(cell, student, Path(self.course_root), stand_in=self.gpu_stand_in,
                                     skipped=self.skipped_tests)
        return [nbformat.v4.new_output("stream", name="stdout", text=text),
                nbformat.v4.new_output("execute_result", data={"text/plain": f"{score:g}"}, execution_count=None)], score

