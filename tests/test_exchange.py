"""A term's round trip, as the course's users do it, with real nbgrader commands: the instructor builds and
releases through the course's own exchange folder; two students, each with their own home and configuration,
fetch, complete and submit; the instructor collects; dlvision grades and writes feedback; the instructor releases
it; each student fetches their own."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import make_toy_course

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def run(args, cwd, home=None):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if home:
        env.update(HOME=str(home), JUPYTER_CONFIG_DIR=str(home / ".jupyter"))
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def student_home(root: Path, student: str, exchange: Path) -> Path:
    """A student's home, whose nbgrader configuration names the course's exchange and the student's id (on a shared
    server the id is the student's own login, and the exchange a folder every student can reach)."""
    home = root / "homes" / student
    (home / ".jupyter").mkdir(parents=True)
    (home / ".jupyter" / "nbgrader_config.py").write_text(
        f"c = get_config()\nc.Exchange.root = {str(exchange)!r}\nc.CourseDirectory.course_id = 'dlvision'\n"
        f"c.CourseDirectory.student_id = {student!r}\n")
    return home


@pytest.fixture(scope="module")
def term(tmp_path_factory):
    root = tmp_path_factory.mktemp("term")
    course = make_toy_course(root / "course")
    exchange = course / "exchange"
    run([BIN / "dlvision", "build", "toy"], course)
    run([BIN / "nbgrader", "release_assignment", "toy"], course)
    homes = {}
    for student, solves in (("ada", True), ("bo", False)):
        homes[student] = home = student_home(root, student, exchange)
        run([BIN / "nbgrader", "fetch_assignment", "toy"], home, home)
        if solves:
            path = home / "toy" / "toy.ipynb"
            nb = nbformat.read(path, as_version=4)
            nb.cells[2].source = "def square(x):\n    return x * x"
            nb.cells[4].source = 'answer = "B"'
            nbformat.write(nb, path)
        run([BIN / "nbgrader", "submit", "toy"], home, home)
    run([BIN / "nbgrader", "collect", "toy"], course)
    graded = run([BIN / "dlvision", "autograde", "toy", "--jobs", "1"], course)
    run([BIN / "dlvision", "feedback", "toy"], course)
    run([BIN / "nbgrader", "release_feedback", "toy"], course)
    for student, home in homes.items():
        run([BIN / "nbgrader", "fetch_feedback", "toy"], home, home)
    return course, exchange, homes, graded


def test_students_fetch_what_the_instructor_released(term):
    _, _, homes, _ = term
    for home in homes.values():
        assert (home / "toy" / "toy.ipynb").is_file()


def test_the_instructor_collects_every_submission_and_grades_it(term):
    course, _, _, graded = term
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["ada", "bo"]
    assert "ada" in graded and "7 / 7 auto" in graded and "0 / 7 auto" in graded


def test_each_student_fetches_their_own_feedback_only(term):
    _, _, homes, _ = term
    for student, home in homes.items():
        pages = list((home / "toy" / "feedback").rglob("toy.html"))
        assert len(pages) == 1, student
        text = pages[0].read_text()
        assert ("Hidden tests: 4 of 4 passed" in text) == (student == "ada")


def test_students_cannot_read_each_others_submissions_in_the_exchange(term):
    _, exchange, _, _ = term
    inbound = (exchange / "dlvision" / "inbound").stat().st_mode
    assert not inbound & (stat.S_IRGRP | stat.S_IROTH), "students could list the inbound folder"
    assert inbound & stat.S_IWOTH and inbound & stat.S_IXOTH, "students could not submit"
    outbound = (exchange / "dlvision" / "outbound").stat().st_mode
    assert outbound & stat.S_IROTH and not outbound & stat.S_IWOTH, "released files are writable by students"


def test_the_exchange_lives_in_the_course_and_never_in_git(term):
    course, exchange, _, _ = term
    assert exchange.parent == course
    ignored = subprocess.run(["git", "check-ignore", "-q", "exchange/x"], cwd=Path(__file__).resolve().parents[1])
    assert ignored.returncode == 0
    shutil.rmtree(exchange)
