"""Assertions for graders beyond value comparison (which lives in :mod:`dlvision.checks`)."""
from __future__ import annotations

import ast

from dlvision.grading.student import Student


def expect_implemented_without(student: Student, name: str, forbidden: list[str]) -> None:
    """Fail if the submitted source of ``name`` uses one of the dotted names in ``forbidden``.

    An entry matches a dotted name that equals it or starts with it (``"torch.nn"`` matches
    ``torch.nn.functional.relu``; ``"F."`` matches ``F.relu``). The check is static, on the trusted side.
    """
    tree = ast.parse(student.source_of(name))
    used = {_dotted(node) for node in ast.walk(tree) if isinstance(node, (ast.Attribute, ast.Name))}
    used |= {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
             for alias in node.names}
    used |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    hits = sorted({f for f in forbidden for u in used if u and (u == f.rstrip(".") or u.startswith(f.rstrip(".") + "."))})
    assert not hits, (f"{name} uses {', '.join(hits)}, which this exercise asks you to implement yourself "
                      "with tensor operations.")


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""
