"""What dlvision's trusted grading costs per submission, against plain `nbgrader autograde` of the same notebook.

Builds the assignment twice in scratch courses, one with the course's nbgrader_config.py (sandboxed kernel,
trusted graders) and one with nbgrader's stock Execute (hidden cells run as plain code), submits the solution
as several students, and times both autograde runs interleaved, one student at a time. Prints the medians and
their ratio; no threshold is asserted here.

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

REPO = Path(__file__).resolve().parents[1]
PLAIN_CONFIG = '''
c = get_config()
c.CourseDirectory.course_id = "dlvision-plain"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"
'''


def make_course(root: Path, assignment: str, config: str | None, students: int) -> None:
    root.mkdir(parents=True)
    for part in ("source", "graders"):
        shutil.copytree(REPO / part / assignment, root / part / assignment)
    if config is None:
        shutil.copy(REPO / "nbgrader_config.py", root)
    else:
        (root / "nbgrader_config.py").write_text(config)
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
        plain, ours = statistics.median(times["plain"]), statistics.median(times["dlvision"])
        print(f"{args.assignment}, {args.students} submissions, median seconds per submission:")
        print(f"  plain nbgrader autograde : {plain:6.1f} s  {['%.1f' % t for t in times['plain']]}")
        print(f"  dlvision autograde       : {ours:6.1f} s  {['%.1f' % t for t in times['dlvision']]}")
        print(f"  ratio dlvision / plain   : {ours / plain:6.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
