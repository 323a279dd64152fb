"""Which graders score a hidden grade cell, as declared in the cell's source."""
from __future__ import annotations

import re

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
