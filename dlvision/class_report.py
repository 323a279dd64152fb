"""What a class got wrong: an HTML report for the instructor, and a summary for the terminal.

From the gradebook (each submission's points, auto-graded apart from graded by hand, and each hidden cell's
score) and the trusted reports in the autograded notebooks (each grader test's verdict and message): the
distribution of totals, the mean score per hidden cell, each test's failure rate, and the most frequent failure
messages per test, worded by the graders' own hints. Works on any gradebook nbgrader supports.
"""
from __future__ import annotations

import base64
import html
import io
import re
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import MissingEntry

from dlvision import gradebook
from dlvision.course import Course, CourseError
from dlvision.grading import files
from dlvision.grading.cells import is_hidden_grade_cell

_LINE = re.compile(r"^\[(PASS|FAIL|SKIP)\] (?P<title>.+) \((?P<points>[\d.]+) pt(?:, [^)]*)?\)$")


@dataclass
class TestStats:
    cell: str
    title: str
    points: float
    runs: int = 0
    failures: int = 0
    messages: Counter = field(default_factory=Counter)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.runs if self.runs else 0.0


@dataclass
class ClassReport:
    assignment: str
    totals: dict[str, gradebook.Totals]                 # student -> totals
    cells: dict[str, list[tuple[float, float]]]         # hidden cell -> [(score, max)] over students
    tests: list[TestStats]

    @property
    def students(self) -> int:
        return len(self.totals)


def collect(course: Course, assignment: str) -> ClassReport:
    """Gather the class's results of ``assignment`` from the gradebook and the autograded notebooks."""
    totals: dict[str, gradebook.Totals] = {}
    with gradebook.open_gradebook(course) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(f"{assignment} is not in the gradebook: run `dlvision build {assignment}`.") from None
        for student in gb.students:
            try:
                totals[student.id] = gradebook.totals_of(gb.find_submission(assignment, student.id))
            except MissingEntry:
                continue
    if not totals:
        raise CourseError(f"nobody's {assignment} has been graded yet: run `dlvision autograde {assignment}`.")
    cells: dict[str, list[tuple[float, float]]] = defaultdict(list)
    tests: dict[tuple[str, str], TestStats] = {}
    for student in sorted(totals):
        folder = course.root / "autograded" / student / assignment
        if not files.is_real_folder(course.root, f"autograded/{student}/{assignment}"):
            continue
        for path in sorted(folder.glob("*.ipynb")):
            try:
                nb = nbformat.reads(files.read_regular(path, 256 << 20, root=course.root).decode(), as_version=4)
            except (OSError, ValueError):
                continue
            for cell in nb.cells:
                if is_hidden_grade_cell(cell) and len(cell.get("outputs", [])) == 2:
                    grade_id = cell.metadata.nbgrader.grade_id
                    cells[grade_id].append((float(cell.outputs[1].data["text/plain"]),
                                            float(cell.metadata.nbgrader.points)))
                    _count_tests(grade_id, str(cell.outputs[0].get("text", "")), tests)
    return ClassReport(assignment, totals, dict(cells), sorted(tests.values(), key=lambda t: (-t.failure_rate,
                                                                                                t.cell, t.title)))


def _count_tests(cell: str, report: str, tests: dict) -> None:
    """Count each test of a hidden cell's report, and the first line of each failure message."""
    failing = None  # the failed test whose message's first line is still to be counted
    for line in report.splitlines():
        match = _LINE.match(line)
        if match:
            failing = None
            if match[1] == "SKIP":
                continue
            stats = tests.setdefault((cell, match["title"]), TestStats(cell, match["title"], float(match["points"])))
            stats.runs += 1
            if match[1] == "FAIL":
                stats.failures += 1
                failing = stats
        elif failing is not None and line.startswith("       ") and line.strip():
            failing.messages[_gist(line)] += 1
            failing = None


def _gist(line: str) -> str:
    """A failure message's first line with its numbers replaced, so that the same mistake counts as one."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", "#", line.strip())[:240]


def summary_rows(report: ClassReport, limit: int = 10) -> list[tuple[str, str, str, str]]:
    """``(cell, test, failure rate, most frequent message)`` of the most failed tests."""
    return [(t.cell, t.title, f"{t.failure_rate:.0%} of {t.runs}",
             t.messages.most_common(1)[0][0] if t.messages else "") for t in report.tests[:limit] if t.failures]


def to_html(report: ClassReport) -> str:
    """A self-contained HTML page: numbers, two plots (embedded), and the failing tests with their messages."""
    totals = [t.total for t in report.totals.values()]
    maximum = next(iter(report.totals.values())).total_max
    pending = sum(t.to_grade > 0 for t in report.totals.values())
    rows = "".join(
        f"<tr><td>{html.escape(t.cell)}</td><td>{html.escape(t.title)}</td><td>{t.points:g}</td>"
        f"<td>{t.failure_rate:.0%} ({t.failures} of {t.runs})</td><td><ul>"
        + "".join(f"<li>{html.escape(m)} <b>×{n}</b></li>" for m, n in t.messages.most_common(3))
        + "</ul></td></tr>" for t in report.tests)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(report.assignment)}: class report
</title><style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}ul{{margin:0;padding-left:1.2em}}
</style></head><body><h1>{html.escape(report.assignment)}: what the class got wrong</h1>
<p>{report.students} submissions graded. Total: mean {statistics.mean(totals):.1f}, median
{statistics.median(totals):.1f}, range {min(totals):g} to {max(totals):g} of {maximum:g} points.
{pending} submission(s) still have written answers to grade by hand.</p>
<h2>Totals</h2><img alt="distribution of totals" src="data:image/png;base64,{_histogram(totals, maximum)}">
<h2>Mean score per hidden cell</h2><img alt="mean score per hidden cell" src="data:image/png;base64,{_cell_bars(report)}">
<h2>Grader tests, most failed first</h2><table><tr><th>cell</th><th>test</th><th>points</th><th>failed</th>
<th>most frequent messages (numbers as #)</th></tr>{rows}</table></body></html>"""


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _histogram(totals: list[float], maximum: float) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    ax.hist(totals, bins=min(20, max(5, len(totals))), range=(0, maximum), color="#4c72b0")
    ax.set_xlabel("total points")
    ax.set_ylabel("submissions")
    return _png(fig)


def _cell_bars(report: ClassReport) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(report.cells)
    means = [statistics.mean(s / m if m else 0.0 for s, m in report.cells[n]) for n in names]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(names) + 1))
    ax.barh(names, [100 * m for m in means], color="#55a868")
    ax.set_xlim(0, 100)
    ax.set_xlabel("mean score, % of the cell's points")
    ax.invert_yaxis()
    return _png(fig)


def write(report: ClassReport, path: Path) -> None:
    path.write_text(to_html(report), encoding="utf-8")
