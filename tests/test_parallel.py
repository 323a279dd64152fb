"""Grading a batch at once: a pool of processes and a real Dask LocalCluster give the serial scores, a dead worker
fails only its own submission, a batch resumes where it stopped, and Ctrl-C leaves nothing behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from dlvision import api, gradebook
from dlvision.course import Course
from dlvision.parallel import cores_shared_by, grade_all
from dlvision.worker import GradingJob
from tests.conftest import make_toy_course, toy_notebook

pytestmark = pytest.mark.slow

SETTINGS = ["--TrustedExecute.timeout=20"]
WRONG = "def square(x):\n    return 2 * x"


def submit(root, student, wrong=False):
    folder = root / "submitted" / student / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    nb = toy_notebook()
    if wrong:
        nb.cells[2].source = WRONG
    nbformat.write(nb, folder / "toy.ipynb")


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = make_toy_course(tmp_path_factory.mktemp("parallel") / "course")
    course = Course(root, SETTINGS)
    api.build(course, ["toy"])
    for i in range(4):
        submit(root, f"s{i}", wrong=i % 2 == 1)
    return course


EXPECTED = {"s0": 7.0, "s1": 1.0, "s2": 7.0, "s3": 1.0}


def scores(outcomes):
    return {o.student: o.score for o in outcomes}


def test_a_pool_of_processes_gives_the_serial_scores(course):
    assert scores(api.autograde(course, "toy", jobs=2, force=True)) == EXPECTED


def test_a_dask_local_cluster_gives_the_serial_scores(course):
    assert scores(api.autograde(course, "toy", jobs=2, dask=True, force=True)) == EXPECTED


def test_a_batch_grades_only_what_changed_since_it_last_ran(course):
    again = api.autograde(course, "toy", jobs=2)
    assert scores(again) == EXPECTED and all("skipped" in o.message for o in again)
    submit(course.root, "s1")  # s1 fixes square and submits again
    outcomes = {o.student: o for o in api.autograde(course, "toy", jobs=2)}
    assert outcomes["s1"].score == 7.0 and "skipped" not in outcomes["s1"].message
    assert all("skipped" in outcomes[s].message for s in ("s0", "s2", "s3"))


@pytest.mark.parametrize("engine", [dict(workers=2), dict(workers=2, dask=True)], ids=["processes", "dask"])
def test_a_worker_that_dies_fails_only_its_own_submission(course, engine):
    shared = api._shared_parts(course, "toy", gradebook.assignment_template(course, "toy"))
    jobs = [api.prepare_job(course, "toy", s, shared) for s in ("s0", "s2")]
    # A worker dying mid-batch: this job's course configuration ends the process that grades it.
    poison = GradingJob(**{**shared, "student": "poisoned", "submission": jobs[0].submission,
                           "config": "import os\nos._exit(1)\n"})
    results = {r.student: r for r in grade_all([jobs[0], poison, jobs[1]], **engine)}
    assert not results["poisoned"].ok and "Run autograde again" in results["poisoned"].message
    assert results["s0"].ok or "Run autograde again" in results["s0"].message  # a pool lost with the worker
    assert any(results[s].ok for s in ("s0", "s2"))


def orphaned_kernels() -> set[int]:
    """Kernels whose grading process is gone (reparented to init): what an unclean stop would leave behind."""
    listed = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout.splitlines()
    return {int(line.split()[0]) for line in listed[1:]
            if int(line.split()[1]) == 1 and ("ipykernel_launcher" in line or line.split()[2].endswith("bwrap"))}


def test_ctrl_c_stops_cleanly_and_the_next_run_grades_the_rest(tmp_path):
    root = make_toy_course(tmp_path / "course")
    course = Course(root, SETTINGS)
    api.build(course, ["toy"])
    for i in range(5):
        submit(root, f"s{i}")
    before = orphaned_kernels()
    run = subprocess.Popen([sys.executable, "-m", "dlvision", "--course", str(root), "autograde", "toy", "--jobs", "1",
                            *SETTINGS], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(root.glob("autograded/*/toy/toy.ipynb")) and time.monotonic() < deadline:
        time.sleep(0.5)
    os.killpg(run.pid, signal.SIGINT)
    output, _ = run.communicate(timeout=120)
    assert run.returncode != 0 and "interrupted" in output, output
    time.sleep(3)
    assert orphaned_kernels() <= before, "a kernel outlived the interrupted batch"
    graded = {p.parent.parent.name for p in root.glob("autograded/*/toy/toy.ipynb")}
    assert 1 <= len(graded) < 5
    rest = {o.student: o for o in api.autograde(course, "toy")}
    assert {s for s, o in rest.items() if "skipped" not in o.message} == {f"s{i}" for i in range(5)} - graded
    assert all(o.ok and o.score == 7.0 for o in rest.values())


def test_local_workers_share_the_cores_instead_of_each_spinning_a_thread_per_core(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    with cores_shared_by(4):
        assert os.environ["OMP_NUM_THREADS"] == "2"
    assert "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # an administrator's own setting wins
    with cores_shared_by(4):
        assert os.environ["OMP_NUM_THREADS"] == "3"


def test_a_scratch_courses_gradebook_has_the_schema_version_nbgrader_stamps(course, tmp_path, monkeypatch):
    import sqlite3

    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    with Gradebook(f"sqlite:///{tmp_path / 'nbgraders.db'}"):  # nbgrader stamps it (`alembic heads`)
        pass
    (tmp_path / "template.db").write_bytes(gradebook.assignment_template(course, "toy"))
    versions = {name: sqlite3.connect(tmp_path / name).execute("SELECT version_num FROM alembic_version").fetchall()
                for name in ("nbgraders.db", "template.db")}
    assert versions["template.db"] == versions["nbgraders.db"] != []
