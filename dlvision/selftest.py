"""Selftest: prove each assignment's graders. The solution scores full marks, the released stub and the hollow
submissions (the stub returning zeros or its input; see :mod:`dlvision.hollow`) score zero on every hidden cell,
and every mutant loses points in the cells it targets.

The solution and the released stub are graded the production way: real nbgrader, both sandboxed kernels, each
in its own copy of a freshly built course, so variants run in parallel without sharing a gradebook. Hollow
submissions (on every hidden cell) and mutants (on the cells they target) take the direct path (:mod:`dlvision.grading.direct`: the same graded code, grading kernel and
graders, without nbgrader or a notebook kernel, in one warm grading kernel per worker process), which
tests/test_direct.py shows gives the same verdicts. ``gpu`` tests run on the stand-in device.
"""
from __future__ import annotations

import atexit
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from dlvision import api
from dlvision.course import Course, read_notebook
from dlvision.grading.cells import is_hidden_grade_cell
from dlvision.grading.direct import DirectGrader
from dlvision.grading.runner import GraderError
from dlvision.hollow import KINDS, hollow
from dlvision.mutants import Mutant, MutantError, read_mutants
from dlvision.parallel import cores_shared_by

#: Budgets from ../shared/ASSIGNMENTS.md, in seconds, reported (not enforced) per variant: a full grading is the
#: notebook under autograde (30 s) plus all graders of the assignment (60 s); a mutant runs only its targets' graders.
BUDGETS = {"solution": 90, "stub": 90, "hollow": 45, "mutant": 45}
#: Variants graded on the direct path.
DIRECT_KINDS = ("hollow", "mutant")


@dataclass
class Variant:
    """A submission to grade and what it must score: ``kind`` is solution, stub or mutant."""

    assignment: str
    name: str
    kind: str
    notebooks: dict[str, nbformat.NotebookNode]
    targets: tuple[str, ...] = ()
    description: str = ""


@dataclass
class VariantResult:
    variant: Variant
    passed: bool
    seconds: float
    verdict: str
    reports: dict[str, str] = field(default_factory=dict)


def selftest(course: Course, assignments: list[str], jobs: int,
             progress: Callable[[VariantResult], None] = lambda result: None) -> list[VariantResult]:
    """Build each assignment in a scratch course, grade all its variants ``jobs`` at a time, and judge them."""
    scratch = Path(tempfile.mkdtemp(prefix="dlvision-selftest-"))
    try:
        variants, courses = [], {}
        for assignment in assignments:
            courses[assignment] = _built_copy(course, assignment, scratch / assignment)
            variants += _variants(course, assignment, courses[assignment])
        results = []
        overrides = [*course.overrides, "--TrustedExecute.gpu_stand_in=True"]
        with cores_shared_by(jobs), ProcessPoolExecutor(max_workers=jobs,
                                                        mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {(pool.submit(_grade_mutant, str(courses[v.assignment]), v.assignment, dict(v.notebooks),
                                    list(v.targets)) if v.kind in DIRECT_KINDS else
                        pool.submit(_grade_variant, str(courses[v.assignment]), str(scratch / "variants" / v.name),
                                    v.assignment, v.name, dict(v.notebooks), overrides)): v
                       for v in sorted(variants, key=lambda v: v.kind in DIRECT_KINDS)}
            for future in as_completed(futures):
                result = _judge(futures[future], *future.result())
                progress(result)
                results.append(result)
        return sorted(results, key=lambda r: variants.index(r.variant))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _built_copy(course: Course, assignment: str, root: Path) -> Path:
    root.mkdir(parents=True)
    shutil.copy(course.root / "nbgrader_config.py", root)
    shutil.copytree(course.root / "source" / assignment, root / "source" / assignment)
    shutil.copytree(course.root / "graders" / assignment, root / "graders" / assignment)
    api.build(Course(root, course.overrides), [assignment])
    return root


def _variants(course: Course, assignment: str, built: Path) -> list[Variant]:
    sources = {p.name: read_notebook(p) for p in course.source_notebooks(assignment)}
    stubs = {name: read_notebook(built / "release" / assignment / name) for name in sources}
    variants = [Variant(assignment, f"{assignment}--solution", "solution", sources,
                        description="the solution scores full marks"),
                Variant(assignment, f"{assignment}--stub", "stub", stubs,
                        description="the released stub scores 0 on every hidden cell")]
    hidden = tuple(c.metadata.nbgrader.grade_id for nb in stubs.values() for c in nb.cells if is_hidden_grade_cell(c))
    variants += [Variant(assignment, f"{assignment}--hollow-{kind}", "hollow",
                         {name: hollow(nb, kind) for name, nb in stubs.items()}, hidden,
                         description=f"the stub returning {kind} scores 0 on every hidden cell") for kind in KINDS]
    for mutant in read_mutants(course.root / "graders" / assignment / "mutants"):
        variants.append(Variant(assignment, f"{assignment}--{mutant.name}", "mutant", _mutated(sources, mutant),
                                mutant.caught_by, f"{mutant.description} (caught by {', '.join(mutant.caught_by)})"))
    return variants


def _mutated(sources: dict[str, nbformat.NotebookNode], mutant: Mutant) -> dict[str, nbformat.NotebookNode]:
    for name, nb in sources.items():
        if any(c.metadata.get("nbgrader", {}).get("grade_id") == mutant.replaces for c in nb.cells):
            return {**sources, name: mutant.apply(nb)}
    raise MutantError(f"mutant {mutant.name}: no notebook has a cell '{mutant.replaces}'.")


def _grade_variant(built: str, root: str, assignment: str, student: str, notebooks: dict, overrides: list[str]):
    """In a worker process: copy the built course, submit the variant, autograde it, return its cell scores."""
    shutil.copytree(built, root)
    folder = Path(root) / "submitted" / student / assignment
    folder.mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nbformat.from_dict(nb), folder / name)
    start = time.perf_counter()
    course = Course(root, overrides)
    [outcome] = api.autograde(course, assignment, [student])
    seconds = time.perf_counter() - start
    if not outcome.ok:
        return seconds, None, {}, outcome.message
    reports = {}
    for path in sorted((Path(root) / "autograded" / student / assignment).glob("*.ipynb")):
        for cell in read_notebook(path).cells:
            if is_hidden_grade_cell(cell) and cell.outputs:
                reports[cell.metadata.nbgrader.grade_id] = cell.outputs[0].get("text", "")
    return seconds, api.cell_scores(course, assignment, student), reports, ""


#: A worker process's direct graders, one per built course: each keeps its grading kernel warm between mutants.
_DIRECT: dict[str, DirectGrader] = {}


def _grade_mutant(built: str, assignment: str, notebooks: dict, targets: list[str]):
    """In a worker process: grade a variant's target cells on the direct path; return its cell scores."""
    start = time.perf_counter()
    scores, reports = {}, {}
    for name, nb in notebooks.items():
        if built not in _DIRECT:
            _DIRECT[built] = DirectGrader(Path(built), read_notebook(Path(built) / "release" / assignment / name),
                                          read_notebook(Path(built) / "source" / assignment / name), stand_in=True)
            atexit.register(_DIRECT[built].close)
        try:
            graded = _DIRECT[built].grade(nbformat.from_dict(nb), only=set(targets))
        except GraderError as error:
            return time.perf_counter() - start, None, {}, str(error)
        scores.update({cell: (score, points) for cell, (score, points, _) in graded.items()})
        reports.update({cell: report for cell, (_, _, report) in graded.items()})
    return time.perf_counter() - start, scores, reports, ""


def _judge(variant: Variant, seconds: float, scores: dict | None, reports: dict[str, str],
           error: str) -> VariantResult:
    if scores is None:
        return VariantResult(variant, False, seconds, f"autograde failed: {error}")
    hidden = {c.metadata.nbgrader.grade_id for nb in variant.notebooks.values() for c in nb.cells
              if is_hidden_grade_cell(c)}
    if variant.kind == "solution":
        short = {cell: s for cell, s in scores.items() if s[0] is not None and s[0] < s[1]}
        verdict = "full marks" if not short else "lost points in " + ", ".join(
            f"{cell} ({s[0]:g}/{s[1]:g})" for cell, s in short.items())
    elif variant.kind in ("stub", "hollow"):
        short = {cell: scores[cell] for cell in hidden if scores.get(cell, (0, 0))[0]}
        verdict = "0 on every hidden cell" if not short else "scored in " + ", ".join(
            f"{cell} ({s[0]:g}/{s[1]:g})" for cell, s in short.items())
    else:
        short = {cell: scores.get(cell, (None, 0)) for cell in variant.targets
                 if scores.get(cell, (None, 0))[0] is None or scores[cell][0] >= scores[cell][1]}
        verdict = "caught: " + ", ".join(f"{c} {scores[c][0]:g}/{scores[c][1]:g}" for c in variant.targets
                                         if c in scores) if not short else \
            "NOT caught by " + ", ".join(short)
    budget = BUDGETS[variant.kind]
    if seconds > budget:
        verdict += f" (over the {budget} s budget)"
    return VariantResult(variant, not short, seconds, verdict, {c: reports.get(c, "") for c in short})
