"""Assertions for graders beyond value comparison (which lives in :mod:`dlvision.checks`)."""
from __future__ import annotations

import inspect
from typing import Iterable

from dlvision.grading.analysis import resolve
from dlvision.grading.student import Student


def expect_implemented_without(student: Student, name: str, forbidden: Iterable[str], *,
                               attributes: Iterable[str] = (), calling: tuple | None = None) -> None:
    """Fail if ``name`` reaches one of the ``forbidden`` library objects, through anything its code uses.

    ``forbidden``: dotted names (``"torch.softmax"``, ``"torch.nn.functional"``: everything under it). The check
    follows ``name``'s helpers, classes, module-level aliases and imports, transitively, on the trusted side.
    ``attributes``: attribute names forbidden on any object (``"softmax"`` catches ``x.softmax()``).
    ``calling``: ``(args, kwargs)`` to call ``name`` with while the grading kernel records the torch functions
    that run; a forbidden one running fails the test even if the source hid it (the record comes from the
    kernel, so it can only ever fail a test).
    """
    forbidden, attributes = [f.rstrip(".") for f in forbidden], set(attributes)
    if student.not_graded(name):
        raise AssertionError(student.not_graded(name))
    reach = student.reach(name)
    hits = sorted({p for p in reach.paths if _matches(p, forbidden)} | (reach.attributes & attributes))
    if calling is not None:
        _, ran = student.calls(name, *calling[0], **calling[1])
        hits += sorted({c for c in ran if _matches(c, forbidden) or c.rsplit(".", 1)[-1] in attributes} - set(hits))
    assert not hits, (f"{name} uses {', '.join(hits[:4])} (directly or through the code it calls), which this "
                      "exercise asks you to implement yourself with tensor operations.")


def _matches(path: str, forbidden: list[str]) -> bool:
    """``path`` is a forbidden object, lies under a forbidden module, or is the same object under another name."""
    for f in forbidden:
        if path == f or path.startswith(f + "."):
            return True
        obj, target = resolve(path), resolve(f)
        if obj is not None and target is not None and not inspect.ismodule(target) and obj is target:
            return True
        if f.startswith(path + ".") and inspect.ismodule(obj) and "." in path:
            return True  # a module holding forbidden things, used as a value
    return False
