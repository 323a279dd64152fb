"""The price of trust: dlvision's autograde of a submission against plain `nbgrader autograde` doing the same work.

Builds the assignment twice in scratch courses. One has the course's nbgrader_config.py: student code in a
sandboxed kernel, the same graders on the trusted side in a grading kernel of its own. The other has nbgrader's
stock configuration, and each hidden cell runs the same graders inside the student's own kernel, on the live
notebook namespace (benchmarks/in_kernel_grading.py: the untrusted way). Submits the solution as several
students and times both autograde runs interleaved, one student at a time. Prints the medians and their ratio
(the goal is at most 1.3); no threshold is asserted here.

    .venv/bin/python benchmarks/autograde_overhead.py [ASSIGNMENT] [--students N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook

from dlvision.grading.cells import declared_graders, is_hidden_grade_cell

REPO = Path(__file__).resolve().parents[1]
PLAIN_CONFIG = '''
c = get_config()
c.CourseDirectory.course_id = "dlvision-plain"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
c.Execute.timeout = 600
'''
#: A hidden cell of the plain course: the same graders, run in the student's kernel.
IN_KERNEL = '''### BEGIN HIDDEN TESTS
{declaration}
import sys
sys.path.insert(0, {benchmarks!r})
from in_kernel_grading import grade_here
grade_here({root!r}, {grade_id!r}, globals())
### END HIDDEN TESTS'''


def grade_in_kernel(notebook: Path, root: Path) -> None:
    """Rewrite the hidden cells of a source notebook to run their graders in the student's kernel."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if is_hidden_grade_cell(cell):
            declaration = "# graders: " + " ".join(declared_graders(cell))
            cell.source = IN_KERNEL.format(declaration=declaration, benchmarks=str(REPO / "benchmarks"),
                                           root=str(root), grade_id=cell.metadata.nbgrader.grade_id)
    nbformat.write(nb, notebook)


def make_course(root: Path, assignment: str, config: str | None, students: int) -> None:
    root.mkdir(parents=True)
    for part in ("source", "graders"):
        shutil.copytree(REPO / part / assignment, root / part / assignment)
    if config is None:
        shutil.copy(REPO / "nbgrader_config.py", root)
    else:
        (root / "nbgrader_config.py").write_text(config)
        for notebook in (root / "source" / assignment).glob("*.ipynb"):
            grade_in_kernel(notebook, root)
    nbgrader(root, "generate_assignment", assignment, "--force")
    for i in range(students):
        folder = root / "submitted" / f"student{i}" / assignment
        folder.mkdir(parents=True)
        for notebook in (root / "source" / assignment).glob("*.ipynb"):
            shutil.copy(notebook, folder)


def nbgrader(root: Path, *args: str) -> float:
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from there to create the gradebook
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    start = time.perf_counter()
    subprocess.run([os.path.join(bin_dir, "nbgrader"), *args], cwd=root, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", nargs="?", default="ch02_neurons")
    parser.add_argument("--students", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dlvision-bench-"))
    try:
        make_course(scratch / "dlvision", args.assignment, None, args.students)
        make_course(scratch / "plain", args.assignment, PLAIN_CONFIG, args.students)
        times = {"dlvision": [], "plain": []}
        for i in range(args.students):
            for kind in ("plain", "dlvision"):
                times[kind].append(nbgrader(scratch / kind, "autograde", args.assignment, "--student",
                                            f"student{i}", "--force"))
        for kind in ("plain", "dlvision"):  # the same work: both must have graded the solution to full marks
            with Gradebook(f"sqlite:///{scratch / kind / 'gradebook.db'}") as gb:
                scores = {(s.student.id, s.code_score, s.max_code_score)
                          for s in gb.assignment_submissions(args.assignment)}
            assert all(score == maximum for _, score, maximum in scores), (kind, scores)
        plain, ours = statistics.median(times["plain"]), statistics.median(times["dlvision"])
        print(f"{args.assignment}, {args.students} submissions, median seconds per submission:")
        print(f"  plain nbgrader autograde : {plain:6.1f} s  {['%.1f' % t for t in times['plain']]}")
        print(f"  dlvision autograde       : {ours:6.1f} s  {['%.1f' % t for t in times['dlvision']]}")
        print(f"  ratio dlvision / plain   : {ours / plain:6.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
