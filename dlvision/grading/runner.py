"""The trusted runner: pytest, in this process, over a hidden cell's grader files, against a Student handle."""
from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path

import pytest

from dlvision.grading.report import Redactor, describe_error, title_of
from dlvision.grading.scoring import TestResult
from dlvision.grading.student import Student, StudentError

log = logging.getLogger(__name__)


def points(n: float):
    """Decorator: the points a grader test carries."""
    return pytest.mark.points(n)


#: Decorator for tests that need CUDA; skipped where grading has none.
gpu = pytest.mark.gpu


def requires(*tests: str):
    """Decorator: the test counts only if the named tests of the same file (which run before it) passed.

    For checks that a hollow answer would pass on its own (speed, "leaves its input unchanged", types, parameter
    counts, off-limits): they earn points only for an answer whose values are right.
    """
    return pytest.mark.requires(*tests)


#: Grader sessions ignore the course's own pytest settings and cache.
_PYTEST_ARGS = ["-q", "-p", "no:cacheprovider", "--import-mode=importlib", "-c", os.devnull]


class GraderError(RuntimeError):
    """A grader file that could not be collected or a test without points: the course's bug, not the student's."""


def run_graders(paths: list[Path], student: Student, *, cuda: bool) -> list[TestResult]:
    """Run every test in ``paths`` with ``student`` as its fixture and return one result per test.

    Raises GraderError when a file does not import or a test carries no ``@points``.
    """
    plugin = _Collector(student, cuda, Redactor(paths))
    args = [str(p) for p in paths] + _PYTEST_ARGS + ["--rootdir", str(Path(paths[0]).parent), "--assert=plain",
                                                     "-W", "ignore"]
    output = io.StringIO()
    with _fresh_imports(paths), contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        pytest.main(args, plugins=[plugin])
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

    def __init__(self, student: Student, cuda: bool, redact: Redactor):
        super().__init__()
        self._student = student
        self._cuda = cuda
        self._redact = redact
        self.results: list[TestResult] = []
        self._outcomes: dict[str, tuple[str, str]] = {}  # test function name -> (outcome, title)

    @pytest.fixture
    def student(self) -> Student:
        return self._student

    def pytest_collection_modifyitems(self, items):
        for item in items:
            if item.get_closest_marker("points") is None:
                self.broken.append(f"{item.nodeid} carries no @points")
                item.add_marker(pytest.mark.skip(reason="carries no @points"))
            if item.get_closest_marker("gpu") and not self._cuda:
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
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            result = TestResult(title, points, "skipped", reason.removeprefix("Skipped: "))
        elif report.passed:
            result = TestResult(title, points, "passed")
        else:
            result = TestResult(title, points, "failed", self._redact(_message(call.excinfo)))
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


def collect_tests(paths: list[Path]) -> list[tuple[str, float | None, bool]]:
    """``(test id, points or None, needs gpu)`` for every test in ``paths``, without running any.

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
    try:
        yield
    finally:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None)
            if file and Path(file).resolve().parent in folders:
                del sys.modules[name]


class _Inventory(_GraderPlugin):
    """Records each collected test's points and gpu mark."""

    def __init__(self):
        super().__init__()
        self.tests: list[tuple[str, float | None, bool]] = []

    def pytest_collection_modifyitems(self, items):
        for item in items:
            marker = item.get_closest_marker("points")
            self.tests.append((item.nodeid, marker.args[0] if marker else None, item.get_closest_marker("gpu") is not None))
