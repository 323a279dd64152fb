"""Named mutants: realistic mistakes in one solution cell that the graders must catch (graders/<id>/mutants/).

A named mutant is the small change it is, a patch against its solution cell (``<name>.diff``)::

    # mutant: softmax without the max shift overflows for large logits
    # replaces: softmax
    # caught-by: test_softmax
    @@
         \"\"\"...\"\"\"
    -    e = torch.exp(x - x.amax(dim=dim, keepdim=True))
    +    e = torch.exp(x)

Each hunk, after its ``@@`` line, lists cell lines: ``" "`` keeps one, ``"-"`` removes one, ``"+"`` adds one.
The kept and removed lines, in order, must appear exactly once in the solution cell (its nbgrader solution markers
left out). When a solution changes so that they no longer do, the mutant fails loudly, naming the lines it looked
for, instead of silently testing an old solution.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

_HEADER = re.compile(r"^#\s*(mutant|replaces|caught-by):\s*(.+?)\s*$")
_MARKER = re.compile(r"^\s*###\s*(BEGIN|END) SOLUTION\s*$")


class MutantError(ValueError):
    """A mutant file without its header, or a patch that no longer applies to its solution cell."""


@dataclass(frozen=True)
class Hunk:
    before: tuple[str, ...]   # the kept and removed lines, in order
    after: tuple[str, ...]    # the kept and added lines, in order


@dataclass(frozen=True)
class Mutant:
    """One mutant: ``hunks`` change solution cell ``replaces``; cells ``caught_by`` must lose points."""

    name: str
    description: str
    replaces: str
    caught_by: tuple[str, ...]
    hunks: tuple[Hunk, ...]

    def patched(self, source: str) -> str:
        """``source`` (a solution cell's) with the mutant's change, or a MutantError if it no longer applies."""
        lines = [line for line in source.split("\n") if not _MARKER.match(line)]
        for hunk in self.hunks:
            found = [i for i in range(len(lines) - len(hunk.before) + 1)
                     if tuple(lines[i:i + len(hunk.before)]) == hunk.before]
            if len(found) != 1:
                raise MutantError(
                    f"mutant {self.name} no longer applies to cell '{self.replaces}': its lines "
                    f"{list(hunk.before)[:3]}... appear {len(found)} times there (exactly once is needed). Was the "
                    "solution changed? Update the mutant to the new solution.")
            lines[found[0]:found[0] + len(hunk.before)] = hunk.after
        return "\n".join(lines)

    def apply(self, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
        """A copy of ``nb`` whose cell ``replaces`` carries the mutant's change."""
        mutated = nbformat.from_dict(nb)
        for cell in mutated.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == self.replaces:
                cell.source = self.patched(cell.source)
                return mutated
        raise MutantError(f"mutant {self.name}: the notebook has no cell '{self.replaces}'.")


def read_mutants(folder: Path) -> list[Mutant]:
    """Every mutant in ``folder`` (none if it does not exist), sorted by name."""
    return [read_mutant(path) for path in sorted(Path(folder).glob("*.diff"))]


def read_mutant(path: Path) -> Mutant:
    header, hunks, before, after = {}, [], None, None
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if before is None and (match := _HEADER.match(line)):
            header[match[1]] = match[2]
        elif line.startswith("@@"):
            if before is not None:
                hunks.append(Hunk(tuple(before), tuple(after)))
            before, after = [], []
        elif before is not None and line[:1] in (" ", "-", "+"):
            if line[0] in " -":
                before.append(line[1:])
            if line[0] in " +":
                after.append(line[1:])
        elif before is not None and line.strip():
            raise MutantError(f"{path}, line {number}: a patch line starts with ' ', '-' or '+'.")
    if before is not None:
        hunks.append(Hunk(tuple(before), tuple(after)))
    missing = [key for key in ("mutant", "replaces", "caught-by") if key not in header]
    if missing or not hunks or any(not h.before for h in hunks):
        raise MutantError(f"{path}: " + (f"the header lacks {', '.join('# ' + m + ':' for m in missing)}" if missing
                                         else "a mutant needs at least one hunk with a kept or removed line")
                          + " (see docs/writing-graders.md, Mutants).")
    return Mutant(path.stem, header["mutant"], header["replaces"], tuple(header["caught-by"].split()), tuple(hunks))
