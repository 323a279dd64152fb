"""Mutation testing of an assignment's graders: automatic mutants of its solution cells, graded on the direct path.

Each mutant is one small change to one solution cell that mirrors a student's mistake (:data:`OPERATORS`). It is
graded only in the hidden cells whose graders use a name that reaches the mutated cell. A mutant is *killed*
when one of those cells loses points; a *survivor* is a mistake no grader noticed: kill it with a better
grader, or record it, with the reason it cannot be told apart from the solution, in
``graders/<id>/EQUIVALENT_MUTANTS.md``::

    ## pca/constant/1a2b3c4d
    The tolerance 1e-12 only guards a division by zero that the inputs never reach.

The mutation score of a cell is killed / (mutants - recorded equivalents).
"""
from __future__ import annotations

import ast
import copy
import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import nbformat

from dlvision.grading.cells import declared_graders, is_hidden_grade_cell
from dlvision.grading.submission import contract_of, extract

#: The factories whose dtype= and device= arguments the "factory" operator drops.
FACTORIES = {"zeros", "ones", "empty", "full", "arange", "randn", "rand", "randint", "tensor", "eye", "linspace",
             "zeros_like", "ones_like", "empty_like", "full_like", "randn_like", "rand_like"}
#: Reductions and other calls whose ``dim`` may come first, positionally.
DIM_FIRST = {"sum", "mean", "max", "min", "amax", "amin", "argmax", "argmin", "softmax", "log_softmax", "logsumexp",
             "std", "var", "norm", "prod", "cumsum", "flatten", "unsqueeze", "squeeze", "topk", "sort", "argsort",
             "all", "any", "median"}
_ARITH = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
          ast.FloorDiv: ast.Div, ast.MatMult: ast.Mult}
_COMPARE = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}


@dataclass(frozen=True)
class Mutant:
    """One automatic mutant: ``cell`` (a solution cell's grade id), the operator, and the mutated cell source."""

    cell: str
    operator: str
    line: int
    source: str
    diff: str

    @property
    def id(self) -> str:
        return f"{self.cell}/{self.operator}/{hashlib.sha1(self.source.encode()).hexdigest()[:8]}"


@dataclass
class Outcome:
    mutant: Mutant
    killed: bool
    equivalent: str = ""   # the recorded reason, for a survivor recorded as equivalent
    by: list[str] = field(default_factory=list)  # the hidden cells that lost points


# --- the operators ------------------------------------------------------------------------------------------------

def _sites(tree: ast.AST) -> Iterator[tuple[str, ast.AST, Callable[[ast.AST], ast.AST | None]]]:
    """Every place an operator applies: ``(operator, node, change)``; ``change`` mutates a copy of ``node`` in place
    or returns its replacement."""
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            if type(node.op) in _ARITH:
                yield "arith", node, lambda n: setattr(n, "op", _ARITH[type(n.op)]())
            if isinstance(node.op, (ast.Sub, ast.Div, ast.Add)):
                yield "drop-term", node, lambda n: n.left
            if isinstance(node.op, ast.MatMult):
                yield "swap-args", node, lambda n: ast.BinOp(left=n.right, op=n.op, right=n.left)
        elif isinstance(node, ast.AugAssign) and type(node.op) in _ARITH:
            yield "arith", node, lambda n: setattr(n, "op", _ARITH[type(n.op)]())
        elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            yield "compare", node, lambda n: setattr(n, "ops", [_COMPARE[type(n.ops[0])]()])
        elif isinstance(node, ast.BoolOp):
            yield "boolean", node, lambda n: setattr(n, "op", ast.Or() if isinstance(n.op, ast.And) else ast.And())
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            yield "negation", node, lambda n: n.operand
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            yield "constant", node, lambda n: setattr(n, "value", _shifted(n.value))
        elif isinstance(node, ast.Call):
            yield from _call_sites(node)


def _call_sites(node: ast.Call):
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    for i, keyword in enumerate(node.keywords):
        if keyword.arg in ("dim", "axis") and _int_constant(keyword.value) is not None:
            yield "dim", node, lambda n, i=i: setattr(n.keywords[i], "value", _other_dim(n.keywords[i].value))
        if keyword.arg == "keepdim" and isinstance(keyword.value, ast.Constant) and keyword.value.value is True:
            yield "keepdim", node, lambda n, i=i: n.keywords.__delitem__(i)
        if keyword.arg in ("dtype", "device") and name in FACTORIES:
            yield "factory", node, lambda n, i=i: n.keywords.__delitem__(i)
    if name in DIM_FIRST and isinstance(node.func, ast.Attribute) and node.args and \
            _int_constant(node.args[0]) is not None:
        yield "dim", node, lambda n: n.args.__setitem__(0, _other_dim(n.args[0]))
    if name in ("clone", "detach", "contiguous") and isinstance(node.func, ast.Attribute) and not node.args:
        yield "drop-call", node, lambda n: n.func.value
    if name in ("matmul", "mm", "bmm") and len(node.args) == 2:
        yield "swap-args", node, lambda n: setattr(n, "args", [n.args[1], n.args[0]])


def _int_constant(node) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
            and type(node.operand.value) is int:
        return -node.operand.value
    return None


def _other_dim(node) -> ast.AST:
    value = _int_constant(node)
    return ast.Constant(value + 1 if value >= 0 else value - 1)


def _shifted(value):
    if isinstance(value, int):
        return value + 1
    return value * 2 if value else 1.0


def mutants_of(cell: str, source: str) -> list[Mutant]:
    """Every automatic mutant of the solution cell ``cell`` (its source as written in the source notebook)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    docstrings = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(
        n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)) and n.body and isinstance(
        n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    original = ast.unparse(tree)
    found: dict[str, Mutant] = {}
    for index, (operator, node, change) in enumerate(_sites(tree)):
        if id(node) in docstrings:
            continue
        mutated = _apply(tree, node, change)
        if mutated is None or mutated == original:
            continue
        diff = "\n".join(line for line in difflib.unified_diff(original.splitlines(), mutated.splitlines(),
                                                               lineterm="", n=0) if line[:1] in "+-"
                         and not line.startswith(("+++", "---")))
        found.setdefault(mutated, Mutant(cell, operator, getattr(node, "lineno", 0), mutated, diff))
    return list(found.values())


def _apply(tree: ast.AST, target: ast.AST, change) -> str | None:
    """The source of ``tree`` with ``change`` applied to (a copy of) ``target``."""
    position = [i for i, n in enumerate(ast.walk(tree)) if n is target][0]
    copied = copy.deepcopy(tree)
    node = list(ast.walk(copied))[position]
    replacement = change(node)
    if isinstance(replacement, ast.AST) and replacement is not node:
        for parent in ast.walk(copied):
            for name, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, name, replacement)
                elif isinstance(value, list) and any(v is node for v in value):
                    value[[i for i, v in enumerate(value) if v is node][0]] = replacement
    try:
        source = ast.unparse(ast.fix_missing_locations(copied))
        ast.parse(source)
        return source
    except (SyntaxError, ValueError, AttributeError, TypeError):
        return None


# --- which hidden cells a mutant can affect ---------------------------------------------------------------------

def affected_cells(course_root: Path, nb: nbformat.NotebookNode, contract: dict[str, list[str]]) -> dict[str, set[str]]:
    """``{solution cell: the hidden cells whose graders use a name that reaches it}``.

    A grader "uses" every contract name that appears in its source (calls, scenarios, values); a name reaches a
    cell if its graded code holds a definition from that cell.
    """
    hidden = [c for c in nb.cells if is_hidden_grade_cell(c)]
    graded = extract(nb.cells, contract, skip={i for i, c in enumerate(nb.cells) if is_hidden_grade_cell(c)})
    reaches = {name: {u.label.strip("'") for u in units} for name, units in graded.closures.items()}
    affected: dict[str, set[str]] = {cell: set() for cell in contract}
    for cell in hidden:
        words = set()
        for path in declared_graders(cell):
            words |= set(re.findall(r"\w+", (Path(course_root) / path).read_text(encoding="utf-8")))
        for name in words & set(graded.contract):
            for solution_cell in reaches.get(name, ()):
                affected.setdefault(solution_cell, set()).add(cell.metadata.nbgrader.grade_id)
    return affected


def equivalents(path: Path) -> dict[str, str]:
    """``{mutant id: reason}`` recorded in an EQUIVALENT_MUTANTS.md."""
    if not path.is_file():
        return {}
    recorded, current = {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            recorded[current] = ""
        elif current and line.strip():
            recorded[current] = (recorded[current] + " " + line.strip()).strip()
    return recorded


def mutated_notebook(nb: nbformat.NotebookNode, mutant: Mutant) -> nbformat.NotebookNode:
    changed = nbformat.from_dict(nb)
    for cell in changed.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == mutant.cell:
            cell.source = mutant.source
    return changed


def solution_cells(nb: nbformat.NotebookNode) -> dict[str, str]:
    return {c.metadata.nbgrader.grade_id: c.source for c in nb.cells
            if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}





# --- a run ----------------------------------------------------------------------------------------------------------

def run(course, assignment: str, *, jobs: int, cells: set[str] | None = None,
        progress: Callable[[Outcome], None] = lambda outcome: None) -> tuple[list[Outcome], float]:
    """Mutation-test ``assignment``: ``(outcomes, seconds)``. Raises CourseError if the solution itself does not
    score full marks on the direct path (then no mutant could be judged)."""
    import multiprocessing
    import shutil
    import tempfile
    import time
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from dlvision.course import CourseError, read_notebook
    from dlvision.selftest import _built_copy, _grade_mutant

    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="dlvision-mutate-"))
    try:
        built = _built_copy(course, assignment, scratch / assignment)
        outcomes = []
        recorded = equivalents(course.root / "graders" / assignment / "EQUIVALENT_MUTANTS.md")
        for path in course.source_notebooks(assignment):
            source = read_notebook(path)
            contract = contract_of(solution_cells(read_notebook(built / "release" / assignment / path.name)),
                                   solution_cells(source))
            affected = affected_cells(built, source, contract)
            mutants = [m for cell, text in solution_cells(source).items() if cells is None or cell in cells
                       for m in mutants_of(cell, text) if affected.get(cell)]
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                everything = sorted({c for targets in affected.values() for c in targets})
                _, scores, _, error = pool.submit(_grade_mutant, str(built), assignment, {path.name: source},
                                                  everything).result()
                short = [c for c, (score, points) in (scores or {}).items() if score < points]
                if scores is None or short:
                    raise CourseError(f"the solution of {assignment} does not score full marks on the direct path "
                                      f"({error or ', '.join(short)}); fix that before mutation testing.")
                futures = {pool.submit(_grade_mutant, str(built), assignment,
                                       {path.name: mutated_notebook(source, m)}, sorted(affected[m.cell])): m
                           for m in mutants}
                for future in as_completed(futures):
                    mutant = futures[future]
                    _, scores, _, error = future.result()
                    lost = sorted(c for c, (score, points) in (scores or {}).items() if score < points)
                    outcome = Outcome(mutant, scores is None or bool(lost), by=lost if scores else ["(graders failed)"])
                    if not outcome.killed and mutant.id in recorded:
                        outcome.equivalent = recorded[mutant.id] or "(no reason recorded)"
                    progress(outcome)
                    outcomes.append(outcome)
        return sorted(outcomes, key=lambda o: (o.mutant.cell, o.mutant.line, o.mutant.id)), time.perf_counter() - start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def scores(outcomes: list[Outcome]) -> dict[str, tuple[int, int, int]]:
    """``{solution cell: (mutants, killed, recorded equivalent)}``."""
    table: dict[str, tuple[int, int, int]] = {}
    for o in outcomes:
        total, killed, equivalent = table.get(o.mutant.cell, (0, 0, 0))
        table[o.mutant.cell] = (total + 1, killed + o.killed, equivalent + bool(o.equivalent))
    return table
