"""The trusted runner: pytest, in this process, over a hidden cell's grader files, against a Student handle."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path

import pytest

from dlvision.grading.cells import declared_graders
from dlvision.grading.report import Redactor, describe_error, format_report, title_of
from dlvision.grading.scoring import TestResult, cell_score
from dlvision.grading.grading_kernel import GraderError
from dlvision.grading.student import Student, StudentError

log = logging.getLogger(__name__)


def points(n: float):
    """Decorator: the points a grader test carries."""
    return pytest.mark.points(n)


#: Decorator for tests that need CUDA (they take the ``device`` fixture); skipped where grading has none, or run on
#: the stand-in device (see :mod:`~dlvision.grading.device`) when ``stand_in`` is set, as ``dlvision selftest`` does.
gpu = pytest.mark.gpu

STAND_IN_NOTE = "on the stand-in CUDA device"


def requires(*tests: str):
    """Decorator: the test counts only if the named tests of the same file (which run before it) passed.

    For checks that a hollow answer would pass on its own (speed, "leaves its input unchanged", types, parameter
    counts, off-limits): they earn points only for an answer whose values are right.
    """
    return pytest.mark.requires(*tests)


#: Grader sessions ignore the course's own pytest settings and cache. Reports come from the plugin, so pytest
#: writes no tracebacks, and its unraisable-exception plugin (five full garbage collections per session, half of
#: a cell's grading time) is off.
_PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "-p", "no:unraisableexception", "-p", "no:threadexception",
                "--tb=no", "--import-mode=importlib", "-c", os.devnull]


def grade_cell(cell, student: Student, course_root: Path, *, stand_in: bool = False,
               skipped: str = "exclude") -> tuple[str, float]:
    """``(report, score)`` of a hidden grade cell: its declared graders run against ``student``.

    Raises GraderError when the cell declares no graders, a file does not import or a test carries no points
    (the course's bug, which fails the submission loudly rather than scoring it 0).
    """
    import torch

    grade_id = cell.metadata.nbgrader.get("grade_id", "")
    cell_points = float(cell.metadata.nbgrader.get("points", 0))
    paths = [Path(course_root) / p for p in declared_graders(cell)]
    if not paths:
        raise GraderError(f"hidden cell {grade_id} declares no graders (`dlvision build` would have said so)")
    results = run_graders(paths, student, cuda=torch.cuda.is_available(), stand_in=stand_in)
    score = cell_score(results, cell_points, skipped)
    return format_report(results, score, cell_points), score


def run_graders(paths: list[Path], student: Student, *, cuda: bool, stand_in: bool = False) -> list[TestResult]:
    """Run every test in ``paths`` with ``student`` as its fixture and return one result per test.

    ``gpu`` tests run on CUDA if ``cuda``, else on the stand-in device if ``stand_in`` (their results say so), else
    are skipped. Raises GraderError when a file does not import or a test carries no ``@points``.
    """
    import torch

    own_code = "\n".join(line for lines in student.graded.cell_lines.values() for line in lines)
    plugin = _Collector(student, cuda, stand_in, Redactor(paths, known=own_code))
    args = [str(p) for p in paths] + _PYTEST_ARGS + ["--rootdir", str(Path(paths[0]).parent), "--assert=plain",
                                                     "-W", "ignore"]
    output = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # references are small; one thread is fastest and steady on a busy grading machine
    try:
        with _fresh_imports(paths), contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            pytest.main(args, plugins=[plugin])
    finally:
        torch.set_num_threads(threads)
    log.debug("pytest output:\n%s", output.getvalue())
    if plugin.broken:
        raise GraderError("; ".join(plugin.broken))
    if not plugin.results:
        raise GraderError(f"no tests were collected from {', '.join(map(str, paths))}")
    return plugin.results


class _GraderPlugin:
    """What every grader session shares: the markers, and grader files that fail to collect."""

    def __init__(self):
        self.broken: list[str] = []

    def pytest_configure(self, config):
        config.addinivalue_line("markers", "points(n): the points a grader test carries")
        config.addinivalue_line("markers", "gpu: the test needs a CUDA device")
        config.addinivalue_line("markers", "requires(*tests): the test counts only if these tests passed")

    def pytest_collectreport(self, report):
        if report.failed:
            self.broken.append(f"{report.nodeid or 'a grader file'} could not be collected: "
                               f"{str(report.longrepr).strip().splitlines()[-1]}")


class _Collector(_GraderPlugin):
    """Provides the ``student`` fixture, skips gpu tests without CUDA, and records each test's result."""

    def __init__(self, student: Student, cuda: bool, stand_in: bool, redact: Redactor):
        super().__init__()
        self._student = student
        self._cuda = cuda
        self._stand_in = stand_in and not cuda
        self._redact = redact
        self.results: list[TestResult] = []
        self._outcomes: dict[str, tuple[str, str]] = {}  # test function name -> (outcome, title)

    @pytest.fixture
    def student(self) -> Student:
        return self._student

    @pytest.fixture
    def device(self) -> str:
        """The accelerator a ``gpu`` test runs on: CUDA, real or stand-in."""
        return "cuda"

    def pytest_collection_modifyitems(self, items):
        for item in items:
            if item.get_closest_marker("points") is None:
                self.broken.append(f"{item.nodeid} carries no @points")
                item.add_marker(pytest.mark.skip(reason="carries no @points"))
            if item.get_closest_marker("gpu") and not (self._cuda or self._stand_in):
                item.add_marker(pytest.mark.skip(reason="no CUDA device at grading time"))

    def pytest_runtest_setup(self, item):
        marker = item.get_closest_marker("requires")
        if marker is None:
            return
        unmet = [self._outcomes.get(name, ("not run", name.removeprefix("test_").replace("_", " ")))[1]
                 for name in marker.args if self._outcomes.get(name, ("",))[0] != "passed"]
        if unmet:
            pytest.fail(f"This check counts only once your answer passes: {'; '.join(unmet)}.", pytrace=False)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if not (report.when == "call" or (report.when == "setup" and not report.passed)):
            return
        marker = item.get_closest_marker("points")
        if marker is None:  # already recorded as broken
            return
        points = marker.args[0]
        title = title_of(item.name, getattr(item.obj, "__doc__", None))
        note = STAND_IN_NOTE if self._stand_in and item.get_closest_marker("gpu") else ""
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            result = TestResult(title, points, "skipped", reason.removeprefix("Skipped: "), note)
        elif report.passed:
            result = TestResult(title, points, "passed", note=note)
        elif call.excinfo is not None and isinstance(call.excinfo.value, GraderError):
            self.broken.append(f"{item.nodeid}: {call.excinfo.value}")
            result = TestResult(title, points, "failed", "", note)
        elif call.excinfo is not None and isinstance(call.excinfo.value, pytest.fail.Exception):
            result = TestResult(title, points, "failed", _message(call.excinfo), note)  # the harness's own words
        else:
            result = TestResult(title, points, "failed", self._redact(_message(call.excinfo)), note)
        self._outcomes[item.originalname or item.name] = (result.outcome, title)
        self.results.append(result)


def _message(excinfo) -> str:
    """What a failure says to the student: the grader's assertion, or the student's own error in safe words."""
    if excinfo is None:
        return ""
    error = excinfo.value
    if isinstance(error, pytest.fail.Exception):
        return str(error.msg)
    if isinstance(error, AssertionError):
        return str(error) or "the check failed."
    if isinstance(error, StudentError):
        return f"Your code failed: {error}"
    # The grader could not use what came back; its message may quote the student's values, so only its shape.
    kind = type(error)
    return ("The check could not use what your code returned ("
            + describe_error({"type": f"{kind.__module__}.{kind.__qualname__}", "message": str(error)[:500]}) + ").")


def collect_tests(paths: list[Path]) -> list[tuple[str, float | None, bool, tuple[str, ...]]]:
    """``(test id, points or None, needs gpu, tests it requires)`` for every test in ``paths``, without running any.

    Raises GraderError when a file cannot be collected.
    """
    plugin = _Inventory()
    args = [str(p) for p in paths] + _PYTEST_ARGS + ["--rootdir", str(Path(paths[0]).parent), "--collect-only"]
    with _fresh_imports(paths), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        pytest.main(args, plugins=[plugin])
    if plugin.broken:
        raise GraderError("; ".join(plugin.broken))
    return plugin.tests


@contextlib.contextmanager
def _fresh_imports(paths: list[Path]):
    """Forget the grader modules afterwards: pytest would reuse a cached ``test_x`` of another assignment."""
    folders = {Path(p).resolve().parent for p in paths}
    before = set(sys.modules)
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            file = getattr(sys.modules[name], "__file__", None)
            if file and Path(file).resolve().parent in folders:
                del sys.modules[name]


class _Inventory(_GraderPlugin):
    """Records each collected test's points, gpu mark and required tests."""

    def __init__(self):
        super().__init__()
        self.tests: list[tuple[str, float | None, bool, tuple[str, ...]]] = []

    def pytest_collection_modifyitems(self, items):
        for item in items:
            marker, requires_ = item.get_closest_marker("points"), item.get_closest_marker("requires")
            self.tests.append((item.nodeid, marker.args[0] if marker else None, item.get_closest_marker("gpu") is not None,
                               tuple(requires_.args) if requires_ else ()))
