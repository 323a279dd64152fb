"""Checks on an assignment's sources before it is built: the notebook, its hidden cells, graders and mutants."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import nbformat

from dlvision.course import Course, CourseError, read_notebook
from dlvision.grading.cells import declared_graders, is_hidden_grade_cell
from dlvision.grading.runner import GraderError, collect_tests
from dlvision.grading.submission import contract_of, extract
from dlvision.mutants import MutantError, read_mutants


def lint_assignment(course: Course, assignment: str) -> list[str]:
    """Every problem found in the assignment's sources, each saying what to fix; [] when it is sound."""
    notebooks = course.source_notebooks(assignment)
    if not notebooks:
        return [f"source/{assignment}/ holds no notebook: add source/{assignment}/{assignment}.ipynb."]
    problems: list[str] = []
    claimed: dict[Path, str] = {}
    cells_by_id: dict[str, dict] = {}
    for path in notebooks:
        where = path.relative_to(course.root)
        try:
            nb = read_notebook(path)
            nbformat.validate(nb)
        except (CourseError, nbformat.ValidationError) as error:
            problems.append(f"{where}: {str(error).splitlines()[0]}")
            continue
        ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells if "nbgrader" in c.metadata]
        problems += [f"{where}: grade_id '{i}' is used {n} times; grade ids must be unique."
                     for i, n in Counter(ids).items() if i and n > 1]
        for index, cell in enumerate(nb.cells):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count):
                problems.append(f"{where}: cell {index} ({grade_id or 'no grade_id'}) has outputs; clear them "
                                "(source notebooks are committed without outputs).")
            if grade_id:
                cells_by_id[grade_id] = cell
            if is_hidden_grade_cell(cell):
                problems += _lint_hidden_cell(course, assignment, f"{where}: hidden cell '{grade_id}'", cell, claimed)
        problems += [f"{where}: {why}" for why in _ungradable_solutions(nb)]
    graders = course.root / "graders" / assignment
    for path in sorted(graders.glob("test_*.py")):
        if path.resolve() not in claimed:
            problems.append(f"graders/{assignment}/{path.name} belongs to no hidden cell: declare it in one "
                            f"(# graders: graders/{assignment}/{path.name}) or delete it.")
    try:
        mutants = read_mutants(graders / "mutants")
    except MutantError as error:
        return problems + [str(error)]
    for mutant in mutants:
        target = cells_by_id.get(mutant.replaces)
        if target is None or not target.metadata.get("nbgrader", {}).get("solution"):
            problems.append(f"mutant {mutant.name}: 'replaces: {mutant.replaces}' is not a solution cell's grade_id.")
        else:
            try:
                mutant.patched(target.source)
            except MutantError as error:
                problems.append(str(error))
        for cell_id in mutant.caught_by:
            if cell_id not in cells_by_id or not is_hidden_grade_cell(cells_by_id[cell_id]):
                problems.append(f"mutant {mutant.name}: 'caught-by: {cell_id}' is not a hidden grade cell's grade_id.")
    return problems


def _ungradable_solutions(nb) -> list[str]:
    """Why a solution's own code would not be graded (it uses what graded code may not), if it would not."""
    cells = {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
             if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    contract = contract_of(cells, cells)
    graded = extract(nb.cells, contract, skip={i for i, c in enumerate(nb.cells) if is_hidden_grade_cell(c)})
    return sorted(set(graded.excluded.values()))


def _lint_hidden_cell(course: Course, assignment: str, where: str, cell, claimed: dict[Path, str]) -> list[str]:
    declared = declared_graders(cell)
    if not declared:
        return [f"{where} declares no graders: add '# graders: graders/{assignment}/test_<name>.py' inside its "
                "hidden-test markers (plain asserts in a grade cell would be scored by the student's kernel)."]
    problems, paths = [], []
    for relative in declared:
        path = (course.root / relative).resolve()
        if path.parent != (course.root / "graders" / assignment).resolve() or not path.name.startswith("test_"):
            problems.append(f"{where} names {relative}; graders live at graders/{assignment}/test_*.py.")
        elif not path.is_file():
            problems.append(f"{where} names {relative}, which does not exist.")
        elif path in claimed:
            problems.append(f"{where} names {relative}, which cell '{claimed[path]}' already claims.")
        else:
            claimed[path] = cell.metadata.nbgrader.get("grade_id")
            paths.append(path)
    if not paths:
        return problems
    try:
        tests = collect_tests(paths)
    except GraderError as error:
        return problems + [f"{where}: {error}"]
    problems += [f"{where}: {name} carries no @points." for name, pts, *_ in tests if pts is None]
    problems += [f"{where}: {name} is a gpu test without @requires(<a CPU value test>); on the stand-in device it "
                 "checks no values, so a hollow answer would pass it." for name, _, gpu, needs in tests if gpu and not needs]
    total = sum(pts or 0 for _, pts, *_ in tests)
    if abs(total - float(cell.metadata.nbgrader.get("points", 0))) > 1e-9:
        problems.append(f"{where} is worth {cell.metadata.nbgrader.get('points', 0)} points but its tests carry "
                        f"{total:g}; make them equal.")
    if tests and all(gpu for _, _, gpu, _ in tests):
        problems.append(f"{where}: every test needs a GPU; add one that runs on the CPU so the cell can be graded "
                        "anywhere.")
    if not tests:
        problems.append(f"{where}: its graders hold no tests.")
    return problems
