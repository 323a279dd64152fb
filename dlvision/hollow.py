"""Hollow submissions: the released stub made to run without implementing anything.

Every ``raise NotImplementedError`` in a stub becomes a return of something hollow, made from the first tensor
among the function's arguments (a tensor in a dict or list counts): zeros shaped like it, or the tensor itself.
``__init__`` just returns. Graders must give such a submission 0 on every hidden cell: a test that passes for it
(a speed check, "leaves its input unchanged", a type or parameter count) is rewarding a value the student never
computed. ``dlvision selftest`` grades both.
"""
from __future__ import annotations

import ast

import nbformat

#: The kinds of hollow answer: what a stub returns, made from the first tensor argument ``t``.
KINDS = {"zeros": "t * 0", "input": "t"}

_HELPER = """
def _hollow_answer(*values):
    for value in values:
        if isinstance(value, dict):
            value = list(value.values())
        for t in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(t, torch.Tensor):
                return {kind}
    return None
"""


def hollow(nb: nbformat.NotebookNode, kind: str) -> nbformat.NotebookNode:
    """A copy of the released stub ``nb`` whose solution cells return a hollow answer instead of raising."""
    hollowed = nbformat.from_dict(nb)
    for cell in hollowed.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = _hollow_source(cell.source, KINDS[kind])
    return hollowed


def _hollow_source(source: str, template: str) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    _Hollow().visit(tree)
    return _HELPER.format(kind=template) + ast.unparse(ast.fix_missing_locations(tree))


class _Hollow(ast.NodeTransformer):
    def __init__(self):
        self.functions: list[ast.FunctionDef] = []

    def visit_FunctionDef(self, node):
        self.functions.append(node)
        self.generic_visit(node)
        self.functions.pop()
        return node

    def visit_Raise(self, node):
        if not _is_not_implemented(node.exc):
            return node
        if not self.functions or self.functions[-1].name == "__init__":
            return ast.Pass()
        args = [a.arg for a in self.functions[-1].args.args if a.arg not in ("self", "cls")]
        return ast.parse(f"return _hollow_answer({', '.join(args)})").body[0]


def _is_not_implemented(exc) -> bool:
    target = exc.func if isinstance(exc, ast.Call) else exc
    return isinstance(target, ast.Name) and target.id == "NotImplementedError"
