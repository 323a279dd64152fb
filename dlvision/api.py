"""The course operations behind the CLI: build, autograde, feedback and grades, each a small call into nbgrader."""
from __future__ import annotations

import contextlib
import logging
import re
import sqlite3
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from nbconvert import HTMLExporter
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.apps import NbGraderAPI
from nbgrader.converters import GenerateSolution
from nbgrader.coursedir import CourseDirectory
from nbgrader.utils import capture_log, temp_attrs
from sqlalchemy.exc import SAWarning

from dlvision.course import Course, CourseError, read_notebook
from dlvision.lint import lint_assignment

# nbgrader logs through the "traitlets" logger; its messages are captured per operation and shown on failure.
logging.getLogger("traitlets").addHandler(logging.NullHandler())
logging.getLogger("traitlets").setLevel(logging.INFO)
# nbgrader's own gradebook code triggers SQLAlchemy session warnings that say nothing to a TA.
warnings.filterwarnings("ignore", category=SAWarning, module="nbgrader")


@dataclass(frozen=True)
class Outcome:
    """What one operation on one student's submission came to."""

    student: str
    ok: bool
    score: float | None = None
    max_score: float | None = None
    message: str = ""


def nbgrader_api(course: Course) -> NbGraderAPI:
    config = course.config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def build(course: Course, assignments: list[str]) -> None:
    """Lint each assignment's sources, then generate its release and solution versions (and solution HTML)."""
    problems = [f"{a}: {p}" for a in assignments for p in lint_assignment(course, a)]
    if problems:
        raise CourseError("the sources have problems; fix them and build again:\n  " + "\n  ".join(problems))
    api = nbgrader_api(course)
    for assignment in assignments:
        _check(api.generate_assignment(assignment, force=True, create=True), f"generating {assignment}")
        with temp_attrs(api.coursedir, assignment_id=assignment):
            solution = GenerateSolution(coursedir=api.coursedir, parent=api)
            solution.force = True
            _check(capture_log(solution), f"generating the solutions of {assignment}")
        for notebook in sorted((course.root / "solutions" / assignment).glob("*.ipynb")):
            html, _ = HTMLExporter().from_notebook_node(read_notebook(notebook))
            notebook.with_suffix(".html").write_text(html, encoding="utf-8")


def submissions(course: Course, assignment: str) -> list[str]:
    """The students who submitted ``assignment`` (folders under submitted/<student>/<assignment>)."""
    return sorted(p.parent.name for p in (course.root / "submitted").glob(f"*/{assignment}") if p.is_dir())


def autograde(course: Course, assignment: str, students: list[str] | None = None,
              progress: Callable[[Outcome], None] = lambda outcome: None) -> list[Outcome]:
    """Autograde each student's submission; a broken one is reported and the batch goes on.

    A submission that fails leaves the gradebook as it was before it (restored from a snapshot).
    """
    course.require_gradebook(assignment)
    with Gradebook(_db_url(course)) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise CourseError(f"{assignment} is not in the gradebook yet: run `dlvision build {assignment}`.") from None
    students = students or submissions(course, assignment)
    if not students:
        raise CourseError(f"nobody has submitted {assignment}: submissions go in "
                          f"{course.root / 'submitted' / '<student>' / assignment}/.")
    api = nbgrader_api(course)
    outcomes = []
    for student in students:
        outcome = _autograde_one(course, api, assignment, student)
        progress(outcome)
        outcomes.append(outcome)
    return outcomes


def _autograde_one(course: Course, api: NbGraderAPI, assignment: str, student: str) -> Outcome:
    folder = course.root / "submitted" / student / assignment
    try:
        if not folder.is_dir():
            raise CourseError(f"{folder} does not exist: collect the submission first.")
        for notebook in course.source_notebooks(assignment):
            read_notebook(folder / notebook.name)
    except CourseError as error:
        return Outcome(student, False, message=f"{error} Ask the student to submit again.")
    with _gradebook_guard(course.gradebook) as keep:
        result = api.autograde(assignment, student, force=True, create=True)
        if not result["success"]:
            return Outcome(student, False, message=_last_error(result))
        keep()
    score, max_score = submission_score(course, assignment, student)
    return Outcome(student, True, score, max_score)


def feedback(course: Course, assignment: str, students: list[str] | None = None) -> list[Outcome]:
    """Generate the feedback HTML for each autograded submission (feedback/<student>/<assignment>/)."""
    graded = sorted(p.parent.name for p in (course.root / "autograded").glob(f"*/{assignment}") if p.is_dir())
    students = students or graded
    if not students:
        raise CourseError(f"no autograded submissions of {assignment}: run `dlvision autograde {assignment}` first.")
    api = nbgrader_api(course)
    outcomes = []
    for student in students:
        if student not in graded:
            outcomes.append(Outcome(student, False, message=f"{student} has no autograded {assignment}."))
            continue
        result = api.generate_feedback(assignment, student, force=True)
        outcomes.append(Outcome(student, result["success"], message="" if result["success"] else _last_error(result)))
    return outcomes


def submission_score(course: Course, assignment: str, student: str) -> tuple[float, float]:
    with Gradebook(_db_url(course)) as gb:
        submission = gb.find_submission(assignment, student)
        return submission.score, submission.max_score


def cell_scores(course: Course, assignment: str, student: str) -> dict[str, tuple[float | None, float]]:
    """``grade_id -> (auto_score, max_score)`` for every grade cell of the student's submission."""
    with Gradebook(_db_url(course)) as gb:
        submission = gb.find_submission(assignment, student)
        return {grade.name: (grade.auto_score, grade.max_score)
                for notebook in submission.notebooks for grade in notebook.grades}


def grades(course: Course) -> list[dict]:
    """One row per student and assignment: ``student, assignment, score, max_score`` (score None if missing)."""
    if not course.gradebook.is_file():
        raise CourseError(f"there is no gradebook at {course.gradebook}: run `dlvision build` first.")
    rows = []
    with Gradebook(_db_url(course)) as gb:
        for assignment in gb.assignments:
            for student in gb.students:
                try:
                    submission = gb.find_submission(assignment.name, student.id)
                    score = submission.score
                except MissingEntry:
                    score = None
                rows.append({"student": student.id, "assignment": assignment.name, "score": score,
                             "max_score": assignment.max_score})
    return rows


def _db_url(course: Course) -> str:
    return f"sqlite:///{course.gradebook}"


@contextlib.contextmanager
def _gradebook_guard(path: Path) -> Iterator[Callable[[], None]]:
    """Snapshot the gradebook; restore it on leaving unless ``keep()`` was called."""
    kept = []
    snapshot = sqlite3.connect(":memory:")
    with contextlib.closing(sqlite3.connect(path)) as live:
        live.backup(snapshot)
    try:
        yield lambda: kept.append(True)
    finally:
        if not kept:
            with contextlib.closing(sqlite3.connect(path)) as live:
                snapshot.backup(live)
        snapshot.close()


def _check(result: dict, doing: str) -> None:
    if not result["success"]:
        raise CourseError(f"{doing} failed: {_last_error(result)}")


def _last_error(result: dict) -> str:
    """The root cause of an nbgrader failure: the first exception line in its log or traceback."""
    text = (result.get("log") or "") + "\n" + (result.get("error") or "")
    causes = [line.strip() for line in text.splitlines()
              if re.match(r"\s*[\w.]+(Error|Exception|Exit): ", line) and "see the the above traceback" not in line]
    return causes[0] if causes else "nbgrader failed without saying why (run nbgrader directly to see its log)."
