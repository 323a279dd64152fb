"""The trusted side's handle on the student's kernel: ask it to call a name or run a scenario, get plain data."""
from __future__ import annotations

import ast
import inspect
import textwrap
import time
from typing import Callable

from dlvision.grading import wire


class StudentError(Exception):
    """The student's code raised, timed out, crashed the kernel, or sent back something that is not plain data."""


#: Runs code in the student's kernel within a time limit and returns the cell outputs (nbformat dicts).
Executor = Callable[[str, float], list]


class Student:
    """Calls into the student's sandboxed kernel.

    ``student.softmax(x, dim=-1)`` calls the student's global ``softmax`` there and returns its result;
    ``student.run(scenario, ...)`` sends a grader-defined function and runs it there. Only plain data
    comes back (see :mod:`dlvision.grading.wire`).
    """

    def __init__(self, execute: Executor, code_cells: list[str], *, timeout: float = 30.0,
                 max_reply_bytes: int = 256 << 20):
        self._execute = execute
        self._code_cells = code_cells
        self._timeout = timeout
        self._max_reply_bytes = max_reply_bytes

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._request("call", name, args, kwargs)

    def run(self, scenario: Callable, *args, timeout: float | None = None, **kwargs):
        """Run the top-level grader function ``scenario`` in the student's kernel and return its result.

        The scenario sees the student's global names and imports what else it needs in its body.
        """
        source = textwrap.dedent(inspect.getsource(scenario))
        return self._request("scenario", scenario.__name__, args, kwargs, source=source, timeout=timeout)

    def value(self, name: str):
        """The value of the student's global variable ``name``."""
        return self._request("value", name, (), {})

    def seconds(self, name: str, *args, number: int = 1, **kwargs) -> float:
        """Wall-clock seconds, on the trusted clock, of one request that calls ``name`` ``number`` times."""
        start = time.perf_counter()
        self._request("timed", name, args, kwargs, number=number)
        return time.perf_counter() - start

    def source_of(self, name: str) -> str:
        """The submitted source of the last top-level function or class called ``name`` (static checks)."""
        found = ""
        for code in self._code_cells:
            try:
                tree = ast.parse(code)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
                    found = ast.get_source_segment(code, node) or ""
        if not found:
            raise StudentError(f"no function or class named '{name}' was found in the notebook.")
        return found

    def _request(self, kind: str, name: str, args: tuple, kwargs: dict, *, source: str | None = None,
                 number: int = 1, timeout: float | None = None):
        request = wire.encode({"kind": kind, "name": name, "source": source, "args": tuple(args),
                               "kwargs": dict(kwargs), "number": number})
        code = f"__import__('dlvision.grading.kernel_side', fromlist=['serve']).serve({request!r}, globals())"
        outputs = self._execute(code, timeout or self._timeout)
        errors = [out for out in outputs if out.get("output_type") == "error"]
        if any(error.get("ename") == "CellTimeoutError" for error in errors):
            raise StudentError(f"did not finish within {timeout or self._timeout:g} s "
                               "(an endless loop, or far too slow).")
        replies = [out["data"][wire.REPLY_MIME] for out in outputs
                   if out.get("output_type") == "display_data" and wire.REPLY_MIME in out.get("data", {})]
        if not replies:
            if errors:
                raise StudentError(f"{errors[-1].get('ename')}: {errors[-1].get('evalue')}")
            raise StudentError("no result came back from your kernel (did your code print too much, "
                               "or replace the display machinery?).")
        reply = replies[-1]
        if not isinstance(reply, dict) or not reply.get("ok"):
            error = reply.get("error") if isinstance(reply, dict) else None
            raise StudentError(str(error or "your kernel sent back a malformed reply."))
        try:
            return wire.decode(reply.get("payload"), self._max_reply_bytes)
        except wire.WireError as error:
            raise StudentError(f"the result could not be read back: {error}. Return tensors, numbers, "
                               "strings, or lists, tuples and dicts of them.") from None
