"""A class's results leave the course: a Canvas download collected with nbgrader's zip_collect, graded, then the
grades out as Canvas's import file and the instructor's report of what the class got wrong."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from dlvision.cli import main
from tests.conftest import make_toy_course

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def dlvision(course, *args):
    result = CliRunner().invoke(main, ["--course", str(course), *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The toy course, with a Canvas-style download of three files collected and graded: ada's solution, bo's
    late resubmission of the stub (Canvas renames it toy-1.ipynb), and a notebook that is not the assignment's."""
    course = make_toy_course(tmp_path_factory.mktemp("class") / "course")
    dlvision(course, "build", "toy")
    archive = course / "downloaded" / "toy" / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "submissions.zip", "w") as zf:
        zf.write(course / "source" / "toy" / "toy.ipynb", "ada_1101_9001_toy.ipynb")
        zf.write(course / "release" / "toy" / "toy.ipynb", "bo_LATE_1102_9002_toy-1.ipynb")
        zf.write(course / "release" / "toy" / "toy.ipynb", "cy_1103_9003_scratch.ipynb")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    collected = subprocess.run([BIN / "nbgrader", "zip_collect", "toy"], cwd=course, env=env,
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout + collected.stderr
    dlvision(course, "autograde", "toy", "--TrustedExecute.timeout=10")
    return course


def test_zip_collect_files_each_canvas_submission_under_its_student(graded):
    submitted = graded / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == ["ada", "bo"]
    assert [p.name for p in (submitted / "bo" / "toy").glob("*.ipynb")] == ["toy.ipynb"]


def test_canvas_import_file_has_canvas_columns_and_points_possible(graded, tmp_path):
    dlvision(graded, "grades", "--canvas", tmp_path / "canvas.csv")
    rows = list(csv.reader((tmp_path / "canvas.csv").read_text().splitlines()))
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "toy"]
    assert rows[1][0] == "Points Possible" and rows[1][-1] == "7"
    assert {row[3]: row[-1] for row in rows[2:]} == {"ada": "7", "bo": "0"}


def test_report_names_the_most_failed_tests_with_their_messages(graded, tmp_path):
    output = dlvision(graded, "report", "toy", "--output", tmp_path / "toy.html")
    page = (tmp_path / "toy.html").read_text()
    assert "2 submissions graded" in page and page.count("data:image/png;base64,") == 2
    assert "50% (1 of 2)" in page and "NotImplementedError" in page
    assert "square" in output and "50% of 2" in output


def test_report_before_grading_says_what_to_run(tmp_path):
    course = make_toy_course(tmp_path / "course")
    dlvision(course, "build", "toy")
    result = CliRunner().invoke(main, ["--course", str(course), "report", "toy"])
    assert result.exit_code != 0 and "dlvision autograde toy" in result.output
