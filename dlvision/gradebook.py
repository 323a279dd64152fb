"""The course's gradebook (nbgrader's, on SQLite or PostgreSQL): what dlvision reads from it and how it writes.

Grading never writes the course's gradebook: each submission is graded in a scratch course whose gradebook holds
only the assignment (:func:`assignment_template`). Its results are then saved here by :func:`save`, with
nbgrader's own saving steps (SaveAutoGrades, AssignLatePenalties) in one transaction: a save that fails leaves
every row as it was, and a save touches only its own student's rows, so concurrent saves cannot undo each other.
"""
from __future__ import annotations

import contextlib
import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from unittest import mock

import nbformat
from alembic.script import ScriptDirectory
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.dbutil import ALEMBIC_DIR
from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades, latesubmissions, saveautogrades
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from dlvision.course import Course, CourseError


def db_url(course: Course) -> str:
    """The gradebook's URL (``CourseDirectory.db_url``), a relative SQLite path taken relative to the course."""
    url = make_url(course.config().CourseDirectory.db_url or "sqlite:///gradebook.db")
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).is_absolute():
        url = url.set(database=str(course.root / url.database))
    return url.render_as_string(hide_password=False)


def exists(course: Course) -> bool:
    """True if the gradebook can be used: its SQLite file exists, or it lives on a database server."""
    url = make_url(db_url(course))
    return url.get_backend_name() != "sqlite" or (bool(url.database) and Path(url.database).is_file())


def course_id(course: Course) -> str:
    return course.config().CourseDirectory.course_id or "default_course"


def open_gradebook(course: Course) -> Gradebook:
    return Gradebook(db_url(course), course_id(course))


def assignment_template(course: Course, assignment: str) -> bytes:
    """A SQLite gradebook, as bytes, holding only ``assignment`` as the course's gradebook defines it (its
    notebooks and their grade, solution, task and source cells): what a scratch course grades against."""
    with tempfile.TemporaryDirectory(prefix="dlvision-template-") as scratch:
        path = Path(scratch) / "gradebook.db"
        _stamp_schema_version(path)
        with open_gradebook(course) as source, Gradebook(f"sqlite:///{path}", course_id(course)) as target:
            try:
                found = source.find_assignment(assignment)
            except MissingEntry:
                raise CourseError(f"{assignment} is not in the gradebook yet: run `dlvision build {assignment}`.") \
                    from None
            target.update_or_create_assignment(assignment, duedate=found.duedate)
            for notebook in found.notebooks:
                target.update_or_create_notebook(notebook.name, assignment)
                for cell in notebook.grade_cells:
                    target.update_or_create_grade_cell(cell.name, notebook.name, assignment,
                                                       max_score=cell.max_score, cell_type=cell.cell_type)
                for cell in notebook.solution_cells:
                    target.update_or_create_solution_cell(cell.name, notebook.name, assignment)
                for cell in notebook.task_cells:
                    target.update_or_create_task_cell(cell.name, notebook.name, assignment,
                                                      max_score=cell.max_score, cell_type=cell.cell_type)
                for cell in notebook.source_cells:
                    target.update_or_create_source_cell(cell.name, notebook.name, assignment, source=cell.source,
                                                        cell_type=cell.cell_type, locked=cell.locked,
                                                        checksum=cell.checksum)
        return path.read_bytes()


def _stamp_schema_version(path: Path) -> None:
    """Start a SQLite gradebook at ``path`` stamped with nbgrader's schema version, as nbgrader stamps a new one
    (nbgrader then adds its tables). nbgrader reads the version in an `alembic heads` subprocess, which costs
    1.6 s of CPU per batch and needs `alembic` on the PATH; alembic's API reads it here in 0.06 s."""
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:head)"),
                               {"head": ScriptDirectory(ALEMBIC_DIR).get_current_head()})
    finally:
        engine.dispose()


def assignment_digest(course: Course, assignment: str) -> str:
    """A digest of the assignment as the gradebook defines it (cells, their sources, types, locks and points)."""
    digest = hashlib.sha256()
    with open_gradebook(course) as gb:
        for notebook in sorted(gb.find_assignment(assignment).notebooks, key=lambda n: n.name):
            points = {c.name: c.max_score for c in notebook.grade_cells}
            for cell in sorted(notebook.source_cells, key=lambda c: c.name):
                digest.update(repr((notebook.name, cell.name, cell.cell_type, cell.locked, cell.source,
                                    points.get(cell.name))).encode())
    return digest.hexdigest()


@contextlib.contextmanager
def transaction(course: Course) -> Iterator[Gradebook]:
    """A Gradebook whose changes are written together when the block ends, or not at all if it raises.

    nbgrader commits after every change and its saving steps open a Gradebook of their own; within this block
    those commits only flush, and those steps get this Gradebook.
    """
    gb = open_gradebook(course)
    session = gb.db
    commit = session.commit
    session.commit = session.flush

    class Shared:
        """What ``Gradebook(url)`` gives nbgrader's saving steps inside the block: this transaction's."""

        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return gb

        def __exit__(self, *exc):
            return False

        def __getattr__(self, name):
            return getattr(gb, name)

    try:
        with mock.patch.object(saveautogrades, "Gradebook", Shared), \
                mock.patch.object(latesubmissions, "Gradebook", Shared):
            yield gb
        commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        gb.close()


def save(course: Course, assignment: str, student: str, notebooks: dict[str, nbformat.NotebookNode],
         timestamp: str | None) -> None:
    """Record an autograded submission: the student, the submission, every grade cell's score and comment, and
    the late penalty, with nbgrader's SaveAutoGrades and AssignLatePenalties, in one transaction."""
    config = course.config()
    with transaction(course) as gb:
        gb.update_or_create_student(student)
        submission = gb.update_or_create_submission(assignment, student, **({"timestamp": timestamp} if timestamp
                                                                             else {}))
        for notebook in submission.notebooks:
            if notebook.name not in notebooks:  # as nbgrader does for a notebook that was not submitted
                for grade in notebook.grades:
                    grade.auto_score, grade.needs_manual_grade = 0, False
        for name, nb in notebooks.items():
            resources = {"nbgrader": {"notebook": name, "assignment": assignment, "student": student,
                                      "db_url": db_url(course)}}
            for step in (SaveAutoGrades(config=config), AssignLatePenalties(config=config)):
                nb, resources = step.preprocess(nb, resources)


@dataclass(frozen=True)
class Totals:
    """A submission's points, auto-graded apart from graded by hand, and what is still to grade by hand."""

    auto: float
    auto_max: float
    by_hand: float
    by_hand_max: float
    to_grade: float   # points of the cells still to grade by hand

    @property
    def total(self) -> float:
        return self.auto + self.by_hand

    @property
    def total_max(self) -> float:
        return self.auto_max + self.by_hand_max

    def __str__(self) -> str:
        text = f"{self.auto:g} / {self.auto_max:g} auto"
        if self.by_hand_max:
            graded = self.by_hand_max - self.to_grade
            if graded:
                text += f" + {self.by_hand:g} / {graded:g} by hand"
            if self.to_grade:
                text += f", {self.to_grade:g} to grade by hand"
        return text


def totals_of(submission) -> Totals:
    """The Totals of an nbgrader SubmittedAssignment: written answers (markdown cells) and cells without an
    automatic score are graded by hand; a TA's manual score of an auto-graded cell replaces its automatic one."""
    auto = auto_max = hand = hand_max = to_grade = 0.0
    for notebook in submission.notebooks:
        for grade in notebook.grades:
            if grade.cell.cell_type == "markdown" or grade.auto_score is None:
                hand_max += grade.max_score
                if grade.manual_score is None:
                    to_grade += grade.max_score
                else:
                    hand += grade.manual_score
            else:
                auto_max += grade.max_score
                auto += grade.score or 0.0
    return Totals(auto, auto_max, hand, hand_max, to_grade)


def submission_totals(course: Course, assignment: str, student: str) -> Totals:
    with open_gradebook(course) as gb:
        return totals_of(gb.find_submission(assignment, student))


def submission_score(course: Course, assignment: str, student: str) -> tuple[float, float]:
    with open_gradebook(course) as gb:
        submission = gb.find_submission(assignment, student)
        return submission.score, submission.max_score


def cell_scores(course: Course, assignment: str, student: str) -> dict[str, tuple[float | None, float]]:
    """``grade_id -> (auto_score, max_score)`` for every grade cell of the student's submission."""
    with open_gradebook(course) as gb:
        submission = gb.find_submission(assignment, student)
        return {grade.name: (grade.auto_score, grade.max_score)
                for notebook in submission.notebooks for grade in notebook.grades}
