"""The readable per-test report written into a hidden grade cell. It never shows grader source."""
from __future__ import annotations

import textwrap

from dlvision.grading.scoring import TestResult

_MARKS = {"passed": "PASS", "failed": "FAIL", "error": "FAIL", "skipped": "SKIP"}


def format_report(results: list[TestResult], score: float, cell_points: float) -> str:
    """A plain-text report: a summary line, then one line per test and, under a failure, its message."""
    ran = [r for r in results if r.outcome != "skipped"]
    passed = sum(r.outcome == "passed" for r in ran)
    lines = [f"Hidden tests: {passed} of {len(ran)} passed"
             + (f", {len(results) - len(ran)} skipped" if len(ran) < len(results) else "")
             + f" - score {score:g} / {cell_points:g}", ""]
    for result in results:
        lines.append(f"[{_MARKS[result.outcome]}] {result.title} ({result.points:g} pt)")
        if result.outcome != "passed" and result.message:
            lines.extend(textwrap.indent(result.message.strip(), "       ").splitlines())
    return "\n".join(lines) + "\n"


def title_of(test_name: str, docstring: str | None) -> str:
    """A test's title: the first line of its docstring, else its name as words."""
    if docstring and docstring.strip():
        return docstring.strip().splitlines()[0]
    return test_name.removeprefix("test_").replace("_", " ")
