"""Grade cells: their roles as the gradebook defines them, and the graders a hidden grade cell declares."""
from __future__ import annotations

import re

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor

_DECLARATION = re.compile(r"^\s*#\s*graders:\s*(?P<paths>.+?)\s*$", re.MULTILINE)


def declared_graders(cell) -> list[str]:
    """The grader files (paths relative to the course root) that a cell declares, or [] if none.

    A hidden grade cell declares them in a comment, ``# graders: graders/<id>/test_x.py [more.py ...]``,
    normally inside nbgrader's hidden-test markers so that students never see it.
    """
    if cell.get("cell_type") != "code":
        return []
    return [path for match in _DECLARATION.finditer(cell.get("source", "")) for path in match["paths"].split()]


def is_hidden_grade_cell(cell) -> bool:
    """True for an autograder-test cell (grade, not solution) whose score the trusted graders write."""
    nbgrader = cell.get("metadata", {}).get("nbgrader", {})
    return bool(nbgrader.get("grade")) and not nbgrader.get("solution") and cell.get("cell_type") == "code"


class RestoreGradeCells(NbGraderPreprocessor):
    """Give every cell the nbgrader role the gradebook records for it (runs before nbgrader's OverwriteCells).

    OverwriteCells restores a known cell's source, type, lock and points, but not whether it is a grade, solution
    or task cell, and leaves the flags of cells it does not know. A submission could therefore turn a hidden grade
    cell into a solution cell (so the graders never run) or present a cell of its own as graded. Here a cell the
    gradebook knows gets exactly its recorded role, and any other cell loses its nbgrader metadata.
    """

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        with Gradebook(info["db_url"]) as gb:
            try:
                source_nb = gb.find_notebook(info["notebook"], info["assignment"])
            except MissingEntry:
                return nb, resources
            grades = {c.name: c.max_score for c in source_nb.grade_cells}
            solutions = {c.name for c in source_nb.solution_cells}
            tasks = {c.name for c in source_nb.task_cells}
            sources = {c.name: (c.cell_type, c.source, c.locked) for c in source_nb.source_cells}
        for cell in nb.cells:
            meta = cell.get("metadata", {}).get("nbgrader")
            if meta is None:
                continue
            grade_id = meta.get("grade_id")
            if grade_id not in sources:
                del cell.metadata["nbgrader"]
                continue
            cell_type, source, locked = sources[grade_id]
            meta.update(grade=grade_id in grades, solution=grade_id in solutions, task=grade_id in tasks,
                        locked=locked)
            if grade_id in grades:
                meta["points"] = grades[grade_id]
            else:
                meta.pop("points", None)
            if cell.cell_type != cell_type:
                self.log.warning("Cell %s changed type; restored.", grade_id)
                cell.cell_type = cell_type
                cell.pop("outputs", None), cell.pop("execution_count", None)
                if cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            if locked or is_hidden_grade_cell(cell):
                cell.source = source
        return nb, resources
