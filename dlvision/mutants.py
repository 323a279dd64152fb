"""Mutants: buggy versions of one solution cell that the graders must catch (graders/<id>/mutants/*.py)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

_HEADER = re.compile(r"^#\s*(mutant|replaces|caught-by):\s*(.+?)\s*$", re.MULTILINE)


class MutantError(ValueError):
    """A mutant file without its header."""


@dataclass(frozen=True)
class Mutant:
    """One mutant: ``source`` stands in for solution cell ``replaces``; cells ``caught_by`` must lose points."""

    name: str
    description: str
    replaces: str
    caught_by: tuple[str, ...]
    source: str

    def apply(self, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """A copy of ``nb`` with the replaced cell's source swapped for the mutant's."""
        mutated = nbformat.from_dict(nb)
        for cell in mutated.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == self.replaces:
                cell.source = self.source
                return mutated
        raise MutantError(f"mutant {self.name}: the notebook has no cell '{self.replaces}'.")


def read_mutants(folder: Path) -> list[Mutant]:
    """Every mutant in ``folder`` (none if it does not exist), sorted by name."""
    return [read_mutant(path) for path in sorted(Path(folder).glob("*.py"))]


def read_mutant(path: Path) -> Mutant:
    source = path.read_text(encoding="utf-8")
    header = {key: value for key, value in _HEADER.findall(source)}
    missing = [key for key in ("mutant", "replaces", "caught-by") if key not in header]
    if missing:
        raise MutantError(f"{path}: the header lacks {', '.join('# ' + m + ':' for m in missing)} "
                          "(see docs/writing-graders.md, Mutants).")
    return Mutant(path.stem, header["mutant"], header["replaces"], tuple(header["caught-by"].split()), source)
