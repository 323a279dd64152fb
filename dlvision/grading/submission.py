"""The graded code: the part of a submitted notebook that the graders call, extracted on the trusted side.

Graders call *contract names*: the names that each solution cell's released stub defines (``sigmoid``,
``Linear``, ``answer``). The graded code holds, for each contract name, its definition in its own solution cell
and, transitively, the imports, helpers, classes and constants that definition uses, from any cell. Nothing else
is loaded into the grading kernel: code outside a solution cell cannot stand in for it, statements that are not
definitions (prints, plots, experiments) do not run there, and a contract name whose code is not gradable (see
:mod:`~dlvision.grading.analysis`) is left out, with the reason, so its tests fail.
"""
from __future__ import annotations

import __future__
import ast
import builtins
from dataclasses import dataclass, field

from dlvision.grading.analysis import Facts, Problem, analyse, import_bindings

_BUILTIN_NAMES = set(dir(builtins))

#: Characters of student code analysed per notebook; beyond it, cells are not graded.
MAX_SOURCE_CHARS = 1_000_000

_BINDING = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
            ast.AnnAssign)


@dataclass
class Unit:
    """One top-level statement that binds names, from one cell."""

    order: tuple[int, int]   # (cell index, statement index): notebook order
    label: str               # the cell, as a student knows it: 'sigmoid' (its grade id) or #12 (its position)
    node: ast.stmt
    source: str              # the statement's source, preceded by newlines so that line numbers match the cell
    names: set[str]
    facts: Facts = field(default_factory=Facts)

    @property
    def filename(self) -> str:
        return f"<cell {self.label}>"


@dataclass
class GradedCode:
    """What the grading kernel loads, and what the trusted side knows about it."""

    units: list[Unit]                        # loaded, in notebook order
    contract: dict[str, str]                 # contract name -> grade id of its solution cell
    excluded: dict[str, str]                 # contract name -> why it is not loaded
    closures: dict[str, list[Unit]]          # contract name -> the units it reaches (gradable or not)
    cell_lines: dict[str, list[str]]         # cell label -> its source lines, for quoting
    future_flags: int = 0

    def payload(self) -> dict:
        """The plain data the grading kernel needs to build the module."""
        return {"units": [{"source": u.source, "filename": u.filename} for u in self.units],
                "contract": sorted(n for n in self.contract if n not in self.excluded),
                "future_flags": self.future_flags}

    def reach(self, name: str) -> Facts:
        """Everything ``name`` reaches through its own code and the helpers, classes and aliases it uses."""
        reached = Facts()
        for unit in self.closures.get(name, []):
            reached.paths |= unit.facts.paths
            reached.attributes |= unit.facts.attributes
            reached.globals_used |= unit.facts.globals_used
        return reached

    def quote(self, filename: str, line: int) -> str | None:
        """``cell 'sigmoid', line 4: return x * 2`` for a frame in the student's code, or None."""
        label = filename.removeprefix("<cell ").removesuffix(">")
        lines = self.cell_lines.get(label)
        if not lines or not 1 <= line <= len(lines):
            return None
        return f"cell {label}, line {line}: {lines[line - 1].strip()[:160]}"


def contract_names(stub_source: str) -> list[str]:
    """The names a solution cell's stub defines at top level (its contract with the graders)."""
    try:
        tree = ast.parse(_python(stub_source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    return sorted({n for node in tree.body if isinstance(node, _BINDING) and not isinstance(node, (ast.Import,
                                                                                                   ast.ImportFrom))
                   for n in _bound_names(node)})


def contract_of(stubs: dict[str, str], solutions: dict[str, str]) -> dict[str, list[str]]:
    """``{solution cell: its contract names}``: the names its released stub defines or, for a cell whose stub
    defines none (a multiple-choice ``answer`` whose stub only raises), the names its solution defines. A
    solution's helpers are not contract names, so a student's helper of the same name may live in any cell."""
    return {cell: contract_names(stub) or contract_names(solutions.get(cell, "")) for cell, stub in stubs.items()}


def extract(cells: list[dict], contract: dict[str, list[str]], skip: set[int] = frozenset()) -> GradedCode:
    """The graded code of a notebook.

    ``cells``: the notebook's cells (nbformat dicts); ``contract``: ``{solution grade id: the names its released
    stub defines}``; ``skip``: indices of cells that hold no student code (hidden grade cells). A name that a
    submitted solution cell defines and no stub claims (``answer = "C"`` where the stub only raises) belongs to
    that cell too, unless it is a builtin's name (a scenario must never meet a student's ``isinstance``).
    """
    owner = {name: grade_id for grade_id, names in contract.items() for name in names}
    for cell in cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in contract and cell.get("cell_type") == "code":
            for name in contract_names(cell.get("source", "")):
                if name not in _BUILTIN_NAMES:
                    owner.setdefault(name, grade_id)
    units, cell_lines, broken, budget = [], {}, {}, MAX_SOURCE_CHARS
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code" or index in skip:
            continue
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        label = f"'{grade_id}'" if grade_id else f"#{index + 1}"
        source = _python(cell.get("source", ""))
        cell_lines[label] = source.splitlines()
        budget -= len(source)
        if budget < 0:
            broken[grade_id] = f"the notebook holds more than {MAX_SOURCE_CHARS:,} characters of code"
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as error:
            broken[grade_id] = f"cell {label} has a syntax error at line {error.lineno}: {error.msg}"
            continue
        except (ValueError, RecursionError, MemoryError) as error:
            broken[grade_id] = f"cell {label} could not be read ({type(error).__name__})"
            continue
        lines = source.splitlines(keepends=True)
        for position, node in enumerate(tree.body):
            if isinstance(node, _BINDING):
                units.append(Unit((index, position), label, node, _segment(lines, node), _bound_names(node)))
    bindings: dict[str, list[Unit]] = {}
    for unit in units:
        for name in unit.names:
            grade_id = owner.get(name)
            if grade_id is None or unit.label == f"'{grade_id}'":  # a contract name counts only in its own cell
                bindings.setdefault(name, []).append(unit)
    _analyse(units)
    closures, excluded = {}, {}
    for name, grade_id in owner.items():
        if grade_id in broken:
            excluded[name] = broken[grade_id]
            continue
        if name not in bindings:
            excluded[name] = f"{name} is not defined in its cell '{grade_id}'"
            continue
        closures[name] = _closure(bindings[name], bindings)
        problems = sorted({f"cell {u.label}, line {p.line}: uses {p.what}"
                           for u in closures[name] for p in u.facts.problems})
        if problems:
            excluded[name] = (f"{name} was not graded: its code uses what graded code may not "
                              f"({'; '.join(problems[:3])}{'; ...' if len(problems) > 3 else ''}).")
    loaded = sorted({id(u): u for name, units_ in closures.items() if name not in excluded for u in units_}.values(),
                    key=lambda u: u.order)
    return GradedCode(loaded, dict(owner), excluded, closures, cell_lines, _future_flags(loaded))


def _python(source: str) -> str:
    """Cell source with IPython's syntax (magics, ``!shell``) turned into plain Python."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 - a cell IPython cannot read is left for ast.parse to report
        return source


def _segment(lines: list[str], node: ast.stmt) -> str:
    """Exactly the statement (decorators included, nothing else on its lines), preceded by newlines so that its
    line numbers are the cell's. What the kernel runs is what was analysed: the segment must parse back to it."""
    first = min([node] + getattr(node, "decorator_list", []), key=lambda n: (n.lineno, n.col_offset))
    line, column = first.lineno, first.col_offset - (1 if first is not node else 0)
    if first is not node:  # a decorator's position is after its '@'
        column = lines[line - 1].rfind("@", 0, first.col_offset + 1)
    body = lines[line - 1:node.end_lineno]
    body[-1] = body[-1][:node.end_col_offset] if len(body) > 1 else body[-1][column:node.end_col_offset]
    if len(body) > 1:
        body[0] = body[0][column:]
    text = "".join(body)
    parsed = ast.parse(text).body
    if len(parsed) != 1 or ast.dump(parsed[0]) != ast.dump(node):
        raise ValueError("a statement could not be separated from its neighbours")
    return "\n" * (line - 1) + text


def _bound_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return set(import_bindings(node))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _analyse(units: list[Unit]) -> None:
    """Fill in each unit's facts, knowing which global names are imports and which the student binds."""
    import_paths: dict[str, set[str]] = {}
    student: set[str] = set()
    for unit in units:
        if isinstance(unit.node, (ast.Import, ast.ImportFrom)):
            for name, path in import_bindings(unit.node).items():
                import_paths.setdefault(name, set()).add(path)
        else:
            student |= unit.names
    # An alias of an imported object (``lse = torch.logsumexp``, ``nn = torch.nn``) resolves like an import.
    for _ in range(3):  # aliases of aliases
        for unit in units:
            node = unit.node
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                path = _alias_path(node.value, import_paths)
                if path and not any(u is not unit and node.targets[0].id in u.names for u in units):
                    import_paths.setdefault(node.targets[0].id, set()).add(path)
                    student.discard(node.targets[0].id)
    module_imports = {name: " ".join(sorted(paths)) if name == "*" else next(iter(paths))
                      for name, paths in import_paths.items()}
    ambiguous = {name for name, paths in import_paths.items() if name != "*" and (len(paths) > 1 or name in student)}
    for unit in units:
        try:
            unit.facts = analyse(unit.node, module_imports, ambiguous, student)
        except RecursionError:
            unit.facts = Facts(problems=[Problem(unit.node.lineno, "code nested too deeply to be analysed")])


def _alias_path(value: ast.AST, import_paths: dict[str, set[str]]) -> str | None:
    """``"torch.logsumexp"`` for ``torch.logsumexp`` when ``torch`` is only ever an import; else None."""
    attrs = []
    while isinstance(value, ast.Attribute):
        attrs.append(value.attr)
        value = value.value
    if isinstance(value, ast.Name) and len(import_paths.get(value.id, ())) == 1 and value.id != "*":
        return ".".join([next(iter(import_paths[value.id])), *reversed(attrs)])
    return None


def _closure(start: list[Unit], bindings: dict[str, list[Unit]]) -> list[Unit]:
    seen: dict[int, Unit] = {}
    stack = list(start)
    while stack:
        unit = stack.pop()
        if id(unit) in seen:
            continue
        seen[id(unit)] = unit
        for name in unit.facts.globals_used:
            stack.extend(bindings.get(name, []))
    return sorted(seen.values(), key=lambda u: u.order)


def _future_flags(units: list[Unit]) -> int:
    flags = 0
    for unit in units:
        if isinstance(unit.node, ast.ImportFrom) and unit.node.module == "__future__":
            for alias in unit.node.names:
                feature = getattr(__future__, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
    return flags
