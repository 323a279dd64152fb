"""A course folder: where its assignments, graders and gradebook are, and its nbgrader configuration."""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from traitlets.config import Config
from traitlets.config.loader import KVArgParseConfigLoader, PyFileConfigLoader


class CourseError(Exception):
    """A problem with the course or its input; the message says what to do about it."""


@dataclass
class Course:
    """A course folder holding ``nbgrader_config.py``, ``source/``, ``graders/`` and, once built, a gradebook.

    ``overrides`` are traitlets settings for this run, e.g. ``["--TrustedExecute.timeout=60"]``.
    """

    root: Path
    overrides: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.root = Path(self.root).resolve()
        if not (self.root / "nbgrader_config.py").is_file():
            raise CourseError(f"{self.root} has no nbgrader_config.py: run dlvision from the course folder "
                              "(the repository root) or pass --course PATH.")
        # nbgrader runs `alembic` to create the gradebook: make this environment's tools findable.
        bin_dir = str(Path(sys.executable).parent)
        if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")

    def assignments(self) -> list[str]:
        """The assignments, one folder each under source/."""
        source = self.root / "source"
        return sorted(p.name for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if source.is_dir() else []

    def check_assignments(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """``names`` if all exist (all assignments if none given); else a CourseError naming the known ones."""
        known = self.assignments()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CourseError(f"unknown assignment {', '.join(unknown)}: the course has {', '.join(known) or 'none'} "
                              f"(one folder each under {self.root / 'source'}).")
        return list(names) or known

    def source_notebooks(self, assignment: str) -> list[Path]:
        return sorted((self.root / "source" / assignment).glob("*.ipynb"))

    def config(self) -> Config:
        """nbgrader_config.py, then the overrides, with the course root set."""
        config = PyFileConfigLoader("nbgrader_config.py", path=str(self.root)).load_config()
        try:
            config.merge(KVArgParseConfigLoader(argv=list(self.overrides)).load_config())
        except SystemExit:
            raise CourseError(f"could not read the settings {' '.join(self.overrides)}: "
                              "write them as --Class.trait=value.") from None
        config.CourseDirectory.root = str(self.root)
        config.TrustedExecute.course_root = str(self.root)
        return config


def nbgrader_api(course: Course) -> NbGraderAPI:
    """nbgrader's API for the course, with its configuration and this run's settings."""
    config = course.config()
    exchange = Path(config.Exchange.root) if "root" in config.Exchange else None
    if exchange and not exchange.exists():
        # nbgrader's documented set-up: everyone may write (students submit into it), sticky like /tmp.
        exchange.mkdir(parents=True)
        exchange.chmod(0o1777)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def nbgrader_error(result: dict) -> str:
    """The root cause of an nbgrader failure: the first exception line in its log or traceback."""
    text = (result.get("log") or "") + "\n" + (result.get("error") or "")
    causes = [line.strip() for line in text.splitlines()
              if re.match(r"\s*[\w.]+(Error|Exception|Exit): ", line) and "see the the above traceback" not in line]
    return causes[0] if causes else "nbgrader failed without saying why (run nbgrader directly to see its log)."


def read_notebook(path: Path) -> nbformat.NotebookNode:
    """The notebook at ``path`` (nbformat 4), or a CourseError that says what is wrong with it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CourseError(f"{path} is missing.") from None
    return parse_notebook(data, str(path))


def parse_notebook(data: bytes, where: str) -> nbformat.NotebookNode:
    """The notebook in ``data`` (nbformat 4), or a CourseError that names ``where`` and what is wrong."""
    try:
        text = data.decode("utf-8")
        json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CourseError(f"{where} is not a valid notebook (not JSON: {error}).") from None
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several types for JSON that is not a notebook
        raise CourseError(f"{where} is JSON but not a notebook ({str(error).splitlines()[0]}).") from None
