"""The gradebook on a real PostgreSQL server (started here, in a scratch folder): every command honours
``CourseDirectory.db_url``, and concurrent gradings write at once without losing or duplicating a grade."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest
from sqlalchemy import create_engine, text

from dlvision import api, gradebook
from dlvision.course import Course
from tests.conftest import make_toy_course, toy_notebook

pytestmark = pytest.mark.slow


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def server():
    """A PostgreSQL server on a Unix socket; yields the URL of an empty database."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL is not installed (scripts/install.sh installs it when run as root)")
    folder = Path(tempfile.mkdtemp(prefix="dlvision-postgres-"))  # the server's user must reach it
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    run_as = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        os.chown(sockets, user.pw_uid, user.pw_gid)
        run_as = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    subprocess.run([*run_as, initdb, "-D", str(data), "-U", "postgres", "-A", "trust"], check=True,
                   capture_output=True)
    subprocess.run([*run_as, pg_ctl, "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                    f"-k {sockets} -c listen_addresses='' -c max_connections=50", "start"], check=True,
                   capture_output=True)
    try:
        admin = create_engine(f"postgresql+psycopg://postgres@/postgres?host={sockets}", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("CREATE DATABASE gradebook"))
        admin.dispose()
        yield f"postgresql+psycopg://postgres@/gradebook?host={sockets}"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def course(server, tmp_path_factory):
    root = make_toy_course(tmp_path_factory.mktemp("pg") / "course")
    with open(root / "nbgrader_config.py", "a") as config:
        config.write(f"\nc.CourseDirectory.db_url = {server!r}\n")
    course = Course(root, ["--TrustedExecute.timeout=20"])
    api.build(course, ["toy"])
    for i in range(6):
        folder = root / "submitted" / f"s{i}" / "toy"
        folder.mkdir(parents=True)
        nb = toy_notebook()
        if i % 2:
            nb.cells[2].source = "def square(x):\n    return 2 * x"
        nbformat.write(nb, folder / "toy.ipynb")
    return course


def test_build_writes_the_assignment_to_postgresql_and_no_sqlite_file(course):
    assert gradebook.db_url(course).startswith("postgresql")
    assert not (course.root / "gradebook.db").exists()
    with gradebook.open_gradebook(course) as gb:
        assert [a.name for a in gb.assignments] == ["toy"]


def test_concurrent_gradings_lose_and_duplicate_no_grade(course):
    runs = [subprocess.Popen([sys.executable, "-m", "dlvision", "--course", str(course.root), "autograde", "toy",
                              "--jobs", "2", *[f"--student=s{i}" for i in students], "--TrustedExecute.timeout=20"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for students in ((0, 1, 2), (3, 4, 5))]
    for run in runs:
        output, _ = run.communicate(timeout=900)
        assert run.returncode == 0, output
    engine = create_engine(gradebook.db_url(course))
    with engine.connect() as connection:
        counts = dict(connection.execute(text("SELECT student_id, count(*) FROM submitted_assignment "
                                              "GROUP BY student_id")).all())
        grades = connection.execute(text("SELECT count(*) FROM grade")).scalar()
    engine.dispose()
    assert counts == {f"s{i}": 1 for i in range(6)}
    assert grades == 6 * 2  # two grade cells per submission, each once
    scores = {row["student"]: row["score"] for row in api.grades(course)}
    assert scores == {f"s{i}": (7.0 if i % 2 == 0 else 1.0) for i in range(6)}  # odd ones: square wrong, answer right


def test_a_failed_save_rolls_back_only_its_own_rows(course, monkeypatch):
    before = {row["student"]: row["score"] for row in api.grades(course)}
    folder = course.root / "submitted" / "late" / "toy"
    folder.mkdir(parents=True)
    nbformat.write(toy_notebook(), folder / "toy.ipynb")

    class Broken:  # the second saving step fails after SaveAutoGrades has written this student's scores
        def __init__(self, **kwargs):
            pass

        def preprocess(self, nb, resources):
            raise RuntimeError("the database went away")
    monkeypatch.setattr(gradebook, "AssignLatePenalties", Broken)
    [outcome] = api.autograde(course, "toy", ["late"])
    assert not outcome.ok and "gradebook could not be updated" in outcome.message
    after = {row["student"]: row["score"] for row in api.grades(course)}
    assert after == before  # not even the student row of "late" was kept
    assert not (course.root / "autograded" / "late" / "toy").exists()
