"""Grading one submission away from the course: in a scratch course of its own, on this machine or another.

A :class:`GradingJob` is plain data: the course's configuration, a gradebook holding only the assignment, the
assignment's graders and supporting files, and the submission's regular files. :func:`grade` builds a scratch
course from it, runs nbgrader's autograde there (the trusted pipeline that ``nbgrader_config.py`` sets up), and
returns a :class:`GradingResult`, also plain data: the autograded notebooks and the cells' scores. It never
touches the course itself; the coordinator saves results (see :mod:`dlvision.gradebook`). So a job runs the
same in this process, in a pool of processes, or on a Dask worker.
"""
from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dlvision.course import Course, nbgrader_api, nbgrader_error
from dlvision.grading import files

#: Bounds on what an autograded submission may hold when it is read back (notebooks with their plots).
MAX_AUTOGRADED_FILES, MAX_AUTOGRADED_BYTES = 50, 200 << 20
#: nbgrader's exchange files, copied from the submission: the only files besides the notebooks that come back
#: (feedback is released under the submission's secret, late penalties use its timestamp).
EXCHANGE_FILES = ("timestamp.txt", "submission_secret.txt")


@dataclass(frozen=True)
class GradingJob:
    """Everything needed to grade one submission, as plain data (picklable, and small enough to ship)."""

    assignment: str
    student: str
    config: str                      # the course's nbgrader_config.py
    overrides: tuple[str, ...]       # --Class.trait=value settings of this run
    gradebook: bytes                 # a SQLite gradebook holding only the assignment
    definition: str                  # a digest of the assignment as that gradebook defines it
    graders: dict[str, bytes]        # graders/<assignment>/..., by relative name
    source_files: dict[str, bytes]   # the assignment's source folder (source/<assignment>/)
    submission: dict[str, bytes]     # the submission's regular files, by relative name

    @functools.cached_property
    def key(self) -> str:
        """A digest of everything the grade depends on: the submission, the graders, the settings."""
        digest = hashlib.sha256()
        for part in (self.assignment, self.student, self.config, "\0".join(self.overrides), self.definition,
                     self.graders, self.source_files, self.submission):
            for name, data in sorted(part.items()) if isinstance(part, dict) else [("", part)]:
                digest.update(name.encode() + b"\0" + (data if isinstance(data, bytes) else data.encode()) + b"\0")
        return digest.hexdigest()


@dataclass(frozen=True)
class GradingResult:
    """What grading one submission came to, as plain data."""

    student: str
    ok: bool
    message: str = ""
    notebooks: dict[str, str] = field(default_factory=dict)   # notebook name -> autograded notebook (JSON)
    exchange_files: dict[str, bytes] = field(default_factory=dict)  # see EXCHANGE_FILES
    scores: dict[str, tuple[float | None, float]] = field(default_factory=dict)  # grade id -> (score, max)
    timestamp: str | None = None
    seconds: float = 0.0


def grade(job: GradingJob) -> GradingResult:
    """Autograde ``job`` in a scratch course; any failure is reported in the result, never raised."""
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="dlvision-grade-"))
    try:
        root = scratch / "course"
        files.write_folder(scratch, f"course/graders/{job.assignment}", job.graders)
        files.write_folder(scratch, f"course/source/{job.assignment}", job.source_files)
        files.write_folder(scratch, f"course/submitted/{job.student}/{job.assignment}", job.submission)
        (root / "nbgrader_config.py").write_text(job.config, encoding="utf-8")
        (root / "gradebook.db").write_bytes(job.gradebook)
        course = Course(root, [*job.overrides, f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}"])
        api = nbgrader_api(course)
        outcome = api.autograde(job.assignment, job.student, force=True, create=True)
        if not outcome["success"]:
            return GradingResult(job.student, False, nbgrader_error(outcome), seconds=time.perf_counter() - start)
        autograded = files.read_folder(root, f"autograded/{job.student}/{job.assignment}",
                                       max_files=MAX_AUTOGRADED_FILES, max_bytes=MAX_AUTOGRADED_BYTES)
        notebooks = {name.removesuffix(".ipynb"): data.decode("utf-8") for name, data in autograded.items()
                     if name.endswith(".ipynb") and "/" not in name}
        exchange_files = {name: data[:4096] for name, data in autograded.items() if name in EXCHANGE_FILES}
        with api.gradebook as gb:
            submission = gb.find_submission(job.assignment, job.student)
            scores = {grade.name: (grade.auto_score, grade.max_score)
                      for notebook in submission.notebooks for grade in notebook.grades}
            timestamp = submission.timestamp.isoformat() if submission.timestamp else None
        return GradingResult(job.student, True, notebooks=notebooks, exchange_files=exchange_files, scores=scores,
                             timestamp=timestamp, seconds=time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - one broken submission never stops a batch
        return GradingResult(job.student, False, f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
                             if str(error) else type(error).__name__, seconds=time.perf_counter() - start)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
