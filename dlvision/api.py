"""The course operations behind the CLI: build, autograde, feedback and grades, each a small call into nbgrader.

Autograding reads each submission as regular files only (never through a link), grades it in a scratch course
(:mod:`dlvision.worker`), then records the result: the autograded notebooks go to ``autograded/`` and the scores
to the gradebook in one transaction (:mod:`dlvision.gradebook`). A submission that cannot be graded is reported
and changes nothing; the batch goes on.
"""
from __future__ import annotations

import contextlib
import json
import logging
import re
import signal
import threading
import warnings
from dataclasses import dataclass
from typing import Callable

from nbconvert import HTMLExporter
from nbgrader.api import MissingEntry
from nbgrader.converters import GenerateSolution
from nbgrader.utils import capture_log, temp_attrs
from sqlalchemy.exc import SAWarning

from dlvision import gradebook, parallel
from dlvision.course import Course, CourseError, nbgrader_api, nbgrader_error, parse_notebook, read_notebook
from dlvision.grading import files
from dlvision.lint import lint_assignment
from dlvision.worker import GradingJob, GradingResult

# nbgrader logs through the "traitlets" logger; its messages are captured per operation and shown on failure.
logging.getLogger("traitlets").addHandler(logging.NullHandler())
logging.getLogger("traitlets").setLevel(logging.INFO)
# nbgrader's own gradebook code triggers SQLAlchemy session warnings that say nothing to a TA.
warnings.filterwarnings("ignore", category=SAWarning, module="nbgrader")

#: Bounds on one submission: files, bytes in all, bytes of one notebook.
MAX_SUBMISSION_FILES, MAX_SUBMISSION_BYTES, MAX_NOTEBOOK_BYTES = 200, 64 << 20, 32 << 20

#: Beside an autograded submission: the key of the content it was graded from.
GRADED_MARKER = ".dlvision-graded.json"

#: Student ids that are safe as folder names everywhere (nbgrader's exchange uses the same names).
_STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}")


@dataclass(frozen=True)
class Outcome:
    """What one operation on one student's submission came to (``totals``: its points, auto apart from by hand)."""

    student: str
    ok: bool
    score: float | None = None
    max_score: float | None = None
    message: str = ""
    totals: gradebook.Totals | None = None


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
    """The students who submitted ``assignment``: real folders (not links) ``submitted/<student>/<assignment>``."""
    submitted = course.root / "submitted"
    if not files.is_real_folder(course.root, "submitted"):
        return []
    return sorted(p.name for p in submitted.iterdir()
                  if files.is_real_folder(course.root, f"submitted/{p.name}/{assignment}"))


def autograde(course: Course, assignment: str, students: list[str] | None = None,
              progress: Callable[[Outcome], None] = lambda outcome: None, *, jobs: int = 1, dask: bool = False,
              scheduler: str | None = None, force: bool = False) -> list[Outcome]:
    """Autograde each student's submission; a broken one is reported, changes nothing, and the batch goes on.

    ``jobs`` submissions are graded at once (processes on this machine, or LocalCluster workers with ``dask``;
    ``scheduler``: a running Dask cluster). A submission already graded from the same files with the same
    graders and settings is skipped unless ``force``, so a batch that was stopped resumes where it stopped.
    """
    template = _assignment_template(course, assignment)
    students = students or submissions(course, assignment)
    if not students:
        raise CourseError(f"nobody has submitted {assignment}: submissions go in "
                          f"{course.root / 'submitted' / '<student>' / assignment}/.")
    shared = _shared_parts(course, assignment, template)
    outcomes, keys = [], {}

    def report(outcome: Outcome) -> None:
        progress(outcome)
        outcomes.append(outcome)

    def to_grade():
        for student in students:
            job = prepare_job(course, assignment, student, shared)
            if isinstance(job, Outcome):
                report(job)
            elif not force and (done := _graded_before(course, assignment, job)) is not None:
                report(done)
            else:
                keys[student] = job.key
                yield job

    with _interrupts() as interrupted:
        # never more workers than submissions: one submission is graded here, without starting a pool
        for result in parallel.grade_all(to_grade(), workers=min(jobs, len(students)), dask=dask,
                                         scheduler=scheduler):
            if interrupted:  # nbgrader may have turned the interrupt into this result's failure: keep neither
                raise KeyboardInterrupt
            report(record(course, assignment, result, keys.get(result.student)))
    return outcomes


@contextlib.contextmanager
def _interrupts():
    """Note every Ctrl-C (and raise KeyboardInterrupt as usual), so that a batch stops even where nbgrader caught
    the interrupt and reported it as the failure of the submission it was grading."""
    noted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return

    def note(signum, frame):
        noted.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


def _graded_before(course: Course, assignment: str, job: GradingJob) -> Outcome | None:
    """The outcome saved for this very content (files, graders, settings), or None if it must be graded."""
    try:
        marker = json.loads(files.read_regular(course.root / "autograded" / job.student / assignment / GRADED_MARKER,
                                               4096, root=course.root))
        if marker.get("key") != job.key:
            return None
        totals = gradebook.submission_totals(course, assignment, job.student)
    except (OSError, ValueError, MissingEntry):
        return None
    return Outcome(job.student, True, totals.total, totals.total_max,
                   "unchanged since it was graded; skipped (--force regrades)", totals)


def _assignment_template(course: Course, assignment: str) -> bytes:
    if not gradebook.exists(course):
        raise CourseError(f"there is no gradebook at {gradebook.db_url(course)}: run `dlvision build {assignment}` "
                          "first.")
    return gradebook.assignment_template(course, assignment)


def _shared_parts(course: Course, assignment: str, template: bytes) -> dict:
    """What every job of the batch carries: the configuration, the gradebook template, the graders, and the
    assignment's source folder (its solution notebooks name the contract; nbgrader copies its other files)."""
    source = files.read_folder(course.root, f"source/{assignment}", max_files=500, max_bytes=256 << 20)
    return {"assignment": assignment, "config": (course.root / "nbgrader_config.py").read_text(encoding="utf-8"),
            "overrides": tuple(course.overrides), "gradebook": template, "source_files": source,
            "definition": gradebook.assignment_digest(course, assignment),
            "graders": files.read_folder(course.root, f"graders/{assignment}", max_files=500, max_bytes=64 << 20)}


def prepare_job(course: Course, assignment: str, student: str, shared: dict) -> GradingJob | Outcome:
    """The job that grades ``student``'s submission, or an Outcome saying why it cannot be graded."""
    if not _STUDENT_ID.fullmatch(student):
        return Outcome(student, False, message=f"'{student}' is not a usable student id (letters, digits and "
                                                "_.@+- only).")
    folder = f"submitted/{student}/{assignment}"
    try:
        submitted = files.read_folder(course.root, folder, max_files=MAX_SUBMISSION_FILES,
                                      max_bytes=MAX_SUBMISSION_BYTES)
    except FileNotFoundError:
        return Outcome(student, False, message=f"{course.root / folder} does not exist: collect the submission first.")
    except OSError as error:
        why = error.strerror or str(error)
        return Outcome(student, False, message=f"{course.root / folder} cannot be read safely ({why}). Ask the "
                                               "student to submit again.")
    for notebook in course.source_notebooks(assignment):
        where = f"{course.root / folder / notebook.name}"
        data = submitted.get(notebook.name)
        if data is None:
            return Outcome(student, False, message=f"{where} is missing (or is not a regular file). Ask the "
                                                   "student to submit again.")
        if len(data) > MAX_NOTEBOOK_BYTES:
            return Outcome(student, False, message=f"{where} holds {len(data):,} bytes, more than a notebook may "
                                                   f"({MAX_NOTEBOOK_BYTES:,}). Ask the student to clear its outputs and "
                                                   "submit again.")
        try:
            parse_notebook(data, where)
        except CourseError as error:
            return Outcome(student, False, message=f"{error} Ask the student to submit again.")
    return GradingJob(student=student, submission=submitted, **shared)


def record(course: Course, assignment: str, result: GradingResult, key: str | None = None) -> Outcome:
    """Save a grading result: its notebooks in autograded/ and its scores in the gradebook, together or not at all.
    ``key`` (the job's) is kept beside the notebooks, so that the same content is not graded twice."""
    if not result.ok:
        return Outcome(result.student, False, message=result.message)
    try:
        notebooks = {name: parse_notebook(text.encode("utf-8"), name) for name, text in result.notebooks.items()}
    except CourseError as error:
        return Outcome(result.student, False, message=f"the autograded notebook could not be read back: {error}")
    contents = {f"{name}.ipynb": text.encode("utf-8") for name, text in result.notebooks.items()}
    contents.update(result.exchange_files)
    if key:
        contents[GRADED_MARKER] = json.dumps({"key": key}).encode()
    staged = files.stage_folder(course.root, f"autograded/{result.student}/{assignment}", contents)
    try:
        gradebook.save(course, assignment, result.student, notebooks, result.timestamp)
    except Exception as error:  # noqa: BLE001 - the gradebook is left as it was; the batch goes on
        staged.discard()
        return Outcome(result.student, False, message=f"the gradebook could not be updated ({type(error).__name__}: "
                                                      f"{str(error).splitlines()[0][:200] if str(error) else ''}).")
    staged.commit()
    totals = gradebook.submission_totals(course, assignment, result.student)
    return Outcome(result.student, True, totals.total, totals.total_max, totals=totals)


def feedback(course: Course, assignment: str, students: list[str] | None = None) -> list[Outcome]:
    """Generate the feedback HTML for each autograded submission (feedback/<student>/<assignment>/)."""
    graded = sorted(p.parent.name for p in (course.root / "autograded").glob(f"*/{assignment}")
                    if files.is_real_folder(course.root, f"autograded/{p.parent.name}/{assignment}"))
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
        outcomes.append(Outcome(student, result["success"], message="" if result["success"] else nbgrader_error(result)))
    return outcomes


def submission_score(course: Course, assignment: str, student: str) -> tuple[float, float]:
    return gradebook.submission_score(course, assignment, student)


def cell_scores(course: Course, assignment: str, student: str) -> dict[str, tuple[float | None, float]]:
    """``grade_id -> (auto_score, max_score)`` for every grade cell of the student's submission."""
    return gradebook.cell_scores(course, assignment, student)


def grades(course: Course) -> list[dict]:
    """One row per student and assignment: ``student, assignment, score, max_score`` (score None if missing), and
    the points auto-graded, graded by hand, and still to grade by hand."""
    if not gradebook.exists(course):
        raise CourseError(f"there is no gradebook at {gradebook.db_url(course)}: run `dlvision build` first.")
    rows = []
    with gradebook.open_gradebook(course) as gb:
        for assignment in gb.assignments:
            for student in gb.students:
                try:
                    totals = gradebook.totals_of(gb.find_submission(assignment.name, student.id))
                except MissingEntry:
                    totals = None
                rows.append({"student": student.id, "assignment": assignment.name,
                             "score": totals.total if totals else None, "max_score": assignment.max_score,
                             "auto": totals.auto if totals else None, "auto_max": totals.auto_max if totals else None,
                             "by_hand": totals.by_hand if totals else None,
                             "by_hand_max": totals.by_hand_max if totals else None,
                             "to_grade_by_hand": totals.to_grade if totals else None})
    return sorted(rows, key=lambda row: (row["student"], row["assignment"]))


def student_names(course: Course) -> dict[str, str]:
    """``{student id: "Last, First"}`` for the students whose names the gradebook holds."""
    with gradebook.open_gradebook(course) as gb:
        return {s.id: ", ".join(n for n in (s.last_name, s.first_name) if n) for s in gb.students
                if s.last_name or s.first_name}


def _check(result: dict, doing: str) -> None:
    if not result["success"]:
        raise CourseError(f"{doing} failed: {nbgrader_error(result)}")
