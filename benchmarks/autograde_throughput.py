"""Submissions graded per minute by `dlvision autograde` with --jobs 1, --jobs 2 and a Dask LocalCluster of 2
workers, on the same batch, interleaved (each round runs the three in turn, so a slow spell hits all of them).

The batch is a mix of what a class hands in: copies of the solution, of the released stub and of named mutants
of ASSIGNMENT. Each run re-grades the whole batch (--force) in one built scratch course. Prints each run, then
the median submissions per minute and the speed-ups over --jobs 1 (the goal on 2 cores: at least 1.7 for
--jobs 2).

    .venv/bin/python benchmarks/autograde_throughput.py [ASSIGNMENT] [--submissions 24] [--rounds 1]
"""
from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONFIGURATIONS = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"],
                  "Dask LocalCluster, 2 workers": ["--dask", "--jobs", "2"]}


def dlvision(course: Path, *args: str) -> float:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    done = subprocess.run([BIN / "dlvision", "--course", str(course), *args], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        sys.exit(f"dlvision {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def make_batch(course: Path, assignment: str, submissions: int) -> dict[str, int]:
    """Build the course and submit ``submissions`` notebooks cycling through solution, stub and mutants."""
    from dlvision.mutants import read_mutants

    course.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", course)
    for part in ("source", "graders"):
        shutil.copytree(REPO / part / assignment, course / part / assignment)
    dlvision(course, "build", assignment)
    [name] = [p.name for p in (course / "source" / assignment).glob("*.ipynb")]
    solution = nbformat.read(course / "source" / assignment / name, as_version=4)
    kinds = {"solution": solution, "stub": nbformat.read(course / "release" / assignment / name, as_version=4)}
    for mutant in read_mutants(course / "graders" / assignment / "mutants")[:4]:
        kinds[f"mutant {mutant.name}"] = mutant.apply(solution)
    counts: dict[str, int] = {}
    for i, (kind, nb) in zip(range(submissions), itertools.cycle(kinds.items())):
        folder = course / "submitted" / f"student{i:03d}" / assignment
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / name)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignment", nargs="?", default="ch02_neurons")
    parser.add_argument("--submissions", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="dlvision-throughput-"))
    try:
        counts = make_batch(scratch / "course", args.assignment, args.submissions)
        print(f"{args.assignment}: {args.submissions} submissions ({', '.join(f'{n} {k}' for k, n in counts.items())})"
              f" on {len(os.sched_getaffinity(0))} cores")
        rates: dict[str, list[float]] = {name: [] for name in CONFIGURATIONS}
        for round_ in range(args.rounds):
            for name, options in CONFIGURATIONS.items():
                seconds = dlvision(scratch / "course", "autograde", args.assignment, *options, "--force")
                rates[name].append(args.submissions / seconds * 60)
                print(f"  round {round_ + 1}, {name:30s}: {seconds:6.0f} s, {rates[name][-1]:5.2f} submissions/min")
        serial = statistics.median(rates["--jobs 1"])
        print("median submissions per minute, and speed-up over --jobs 1:")
        for name in CONFIGURATIONS:
            print(f"  {name:30s}: {statistics.median(rates[name]):5.2f}  x{statistics.median(rates[name]) / serial:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
