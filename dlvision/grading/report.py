"""What a student reads about a hidden cell: the per-test report, and the words it may contain.

Anything the student's code computed can carry what the graders sent into its kernel, so student-influenced
text reaches a report only in narrow forms: an exception's class if it is Python's or PyTorch's own, the line of
the student's own code where it was raised (quoted from the submission, on the trusted side), and its message
only if it has the shape of a known Python or PyTorch message (:data:`MESSAGE_SHAPES`), whose variable parts
are small numbers, dtypes, devices and identifiers from the student's own code. Every test message is also
cleared of verbatim grader text and capped, and so is the report as a whole.
"""
from __future__ import annotations

import builtins
import importlib
import io
import re
import textwrap
import tokenize
from pathlib import Path

from dlvision.grading.scoring import TestResult

_MARKS = {"passed": "PASS", "failed": "FAIL", "error": "FAIL", "skipped": "SKIP"}

MAX_MESSAGE_CHARS = 1500
MAX_REPORT_CHARS = 20_000
#: Failure messages are wrapped to this many columns (a test's own line is not: it is one line per test).
REPORT_WIDTH = 100

_NUM = r"-?\d{1,7}(?:\.\d{1,6})?(?:e[-+]?\d{1,3})?"
_SHAPE = r"[\[(]?(?:\d{1,7}(?:, ?|x)?){0,8}[\])]?"
_ID = r"(?P<id{n}>[A-Za-z_][A-Za-z0-9_]{0,39})"
_DTYPE = r"(?:torch\.)?[A-Z]?[a-z]*(?:Float|Double|Long|Int|Half|Bool|Byte|Short|Char|BFloat16|float|double|long|int" \
         r"|half|bool|uint8|int8|int16|int32|int64|float16|float32|float64|bfloat16|complex64|complex128)\d{0,3}" \
         r"(?:Tensor|Type)?"
_DEVICE = r"(?:cpu|cuda|meta|mps)(?::\d{1,2})?"


def _shape(template: str) -> re.Pattern:
    count = iter(range(100))
    pattern = re.sub(r"\{(\w+)\}", lambda m: {"num": _NUM, "shape": _SHAPE, "dtype": _DTYPE, "device": _DEVICE,
                                              "id": _ID.replace("{n}", str(next(count)))}[m[1]], template)
    return re.compile(pattern)


#: The shapes of the error messages a report may quote (Python's and PyTorch's most common ones).
MESSAGE_SHAPES = [_shape(t) for t in [
    r"",
    r"name '{id}' is not defined",
    r"'{id}' object has no attribute '{id}'",
    r"module '{id}' has no attribute '{id}'",
    r"'{id}' object is not (?:callable|subscriptable|iterable)",
    r"'{id}' object does not support item assignment",
    r"unsupported operand type\(s\) for [-+*/@%<>=!]{1,3}: '{id}' and '{id}'",
    r"{id}\(\) takes (?:from )?{num}(?: to {num})? positional arguments? but {num} (?:was|were) given",
    r"{id}\(\) missing {num} required (?:positional|keyword-only) arguments?: '{id}'(?:,? (?:and )?'{id}')*",
    r"{id}\(\) got an unexpected keyword argument '{id}'",
    r"{id}\(\) got multiple values for argument '{id}'",
    r"(?:cannot access local variable|local variable) '{id}' (?:where it is not associated with a value|"
    r"referenced before assignment)",
    r"mat1 and mat2 shapes cannot be multiplied \({num}x{num} and {num}x{num}\)",
    r"The size of tensor a \({num}\) must match the size of tensor b \({num}\) at non-singleton dimension {num}",
    r"The expanded size of the tensor \({num}\) must match the existing size \({num}\) at non-singleton dimension "
    r"{num}\.\s+Target sizes: {shape}\.\s+Tensor sizes: {shape}",
    r"index {num} is out of bounds for dimension {num} with size {num}",
    r"(?:list|tuple|string) index out of range",
    r"Dimension out of range \(expected to be in range of \[{num}, {num}\], but got {num}\)",
    r"shape '{shape}' is invalid for input of size {num}",
    r"Sizes of tensors must match except in dimension {num}\. Expected size {num} but got size {num} for tensor "
    r"number {num} in the list\.",
    r"output with shape {shape} doesn't match the broadcast shape {shape}",
    r"expected scalar type {dtype} but found {dtype}",
    r"expected (?:m1|mat1) and (?:m2|mat2) to have the same dtype, but got: {dtype} != {dtype}",
    r"\"?\w{1,40}\"? not implemented for '{dtype}'",
    r"result type {dtype} can't be cast to the desired output type {dtype}",
    r"Expected all tensors to be on the same device, but (?:found at least two devices, {device} and {device}!?|"
    r"got \w{1,20} is on {device}, different from other tensors on {device}.{0,80})",
    r"indices should be either on cpu or on the same device as the indexed tensor \({device}\)",
    r"\w{1,20}\(\): self, index and source expected to be in the same device, but got \(self\) {device}, "
    r"\(index\) {device}, and \(source\) {device}",
    r"Expected {num}D \(unbatched\) or {num}D \(batched\) input to {id}, but got input of size: {shape}",
    r"Given groups={num}, weight of size {shape}, expected input{shape} to have {num} channels, but got {num} "
    r"channels instead",
    r"(?:float |integer )?division(?: or modulo)? by zero",
    r"too many values to unpack \(expected {num}\)",
    r"not enough values to unpack \(expected {num}, got {num}\)",
    r"element {num} of tensors does not require grad and does not have a grad_fn",
    r"Trying to backward through the graph a second time",
    r"a leaf Variable that requires grad is being used in an in-place operation\.",
    r"one of the variables needed for gradient computation has been modified by an inplace operation",
    r"Boolean value of Tensor with more than one value is ambiguous",
    r"only integer tensors of a single element can be converted to an index",
    r"can't multiply sequence by non-int of type '{id}'",
    r"view size is not compatible with input tensor's size and stride.{0,160}",
    r"maximum recursion depth exceeded",
    r"math domain error",
    r"zero-size array to reduction operation \w{1,20} which has no identity",
    r"max\(\): Expected reduction dim to be specified for input\.numel\(\) == 0\..{0,80}",
    r"selected index k out of range",
    r"Can't call numpy\(\) on Tensor that requires grad\. Use tensor\.detach\(\)\.numpy\(\) instead\.",
    r"Cannot re-initialize CUDA in forked subprocess\..{0,120}",
]]

#: Identifiers a message may name although the student's code does not: Python's and PyTorch's vocabulary.
_VOCABULARY = set(dir(builtins)) | {"Tensor", "NoneType", "function", "method", "builtin_function_or_method",
                                    "generator", "module", "Parameter", "Module", "Size", "torch", "numpy",
                                    "ndarray", "Generator", "dtype", "device", "float", "int", "str"}


def _vocabulary() -> set[str]:
    import torch

    return _VOCABULARY | set(dir(torch)) | set(dir(torch.Tensor)) | set(dir(torch.nn.functional))


def describe_error(error: dict, graded=None, load_failures: list[dict] = (), _depth: int = 0) -> str:
    """An error raised by the student's code, as words that can carry nothing of the graders."""
    kind = _exception_name(error.get("type"))
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    student_words = _student_identifiers(graded)
    if graded is not None and kind == "NameError":
        missing = re.fullmatch(r"name '(\w+)' is not defined", message)
        if missing and missing[1] in graded.excluded:
            return graded.excluded[missing[1]]
        if missing and missing[1] in graded.contract and _depth == 0:
            cell = f"<cell '{graded.contract[missing[1]]}'>"
            for failure in load_failures:
                if any(frame[0] == cell for frame in failure.get("frames", [])):
                    return (f"defining {missing[1]} failed: "
                            + describe_error(failure, graded, (), _depth + 1))
    shown = _safe_message(message, student_words)
    text = kind + (f": {shown}" if shown else "")
    if shown is None:
        text += " (its message is not shown here; run your notebook to see it)"
    frames = [f for f in error.get("frames", []) if isinstance(f, (list, tuple)) and len(f) == 2]
    if graded is not None and frames:
        where = graded.quote(str(frames[-1][0]), int(frames[-1][1]) if isinstance(frames[-1][1], int) else 0)
        if where:
            text += f"\n  at {where}"
    return text


def _exception_name(qualified) -> str:
    """``IndexError`` for Python's or PyTorch's own exception classes; a neutral phrase for anything else."""
    if isinstance(qualified, str) and "." in qualified:
        module, _, name = qualified.rpartition(".")
        if module == "builtins" and isinstance(getattr(builtins, name, None), type) \
                and issubclass(getattr(builtins, name), BaseException):
            return name
        if module.split(".")[0] == "torch" and re.fullmatch(r"[\w.]{1,80}", module):
            try:
                found = getattr(importlib.import_module(module), name.split(".")[-1], None)
            except ImportError:
                found = None
            if isinstance(found, type) and issubclass(found, BaseException):
                return name.split(".")[-1].lstrip("_")
    return "an exception of a class defined in your code"


def _student_identifiers(graded) -> set[str]:
    if graded is None:
        return set()
    return {word for lines in graded.cell_lines.values() for line in lines
            for word in re.findall(r"[A-Za-z_]\w{0,39}", line)}


def _safe_message(message: str, student_words: set[str]) -> str | None:
    """The message if it has a known shape whose identifiers are the student's own or Python's; else None."""
    message = message.strip()
    if len(message) > 300:
        return None
    vocabulary = None
    for shape in MESSAGE_SHAPES:
        match = shape.fullmatch(message)
        if match is None:
            continue
        identifiers = [v for k, v in match.groupdict().items() if k.startswith("id") and v]
        if vocabulary is None and any(i not in student_words for i in identifiers):
            vocabulary = _vocabulary()
        if all(i in student_words or i in vocabulary for i in identifiers):
            return message
    return None


class Redactor:
    """Removes verbatim grader code from messages: a message sharing a run of 40 characters (whitespace collapsed,
    more than one identifier's worth) with a grader file's code, its string literals (the messages and hints meant
    for students) and comments left out. A run that the student's own code (``known``) also holds is theirs to
    see: a quote of their line is never removed for resembling a grader's."""

    WINDOW = 40

    def __init__(self, paths: list[Path], known: str = ""):
        self._known = _collapse(known)
        self._shingles: set[str] = set()
        for path in paths:
            text = _collapse(_code_without_strings(Path(path).read_text(encoding="utf-8")))
            self._shingles |= {text[i:i + self.WINDOW] for i in range(0, max(1, len(text) - self.WINDOW + 1))}

    def __call__(self, message: str) -> str:
        message = message[:MAX_MESSAGE_CHARS * 2]
        collapsed = _collapse(message)
        windows = (collapsed[i:i + self.WINDOW] for i in range(len(collapsed) - self.WINDOW + 1))
        hits = [w for w in windows if w in self._shingles and not re.fullmatch(r"[\w.]+", w) and w not in self._known]
        if hits:
            return "[part of this message was removed: it quoted the hidden tests]"
        return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + " [...]"


#: Tokens that are text, not code: string literals (f-strings' literal parts too, on Python 3.12+) and comments.
_TEXT_TOKENS = {tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def _code_without_strings(source: str) -> str:
    """``source`` with every string literal and comment replaced by a NUL, the rest verbatim."""
    lines = source.splitlines(keepends=True)
    try:
        strings = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type in _TEXT_TOKENS]
    except (tokenize.TokenError, SyntaxError):
        return ""
    for token in reversed(strings):
        (row, col), (end_row, end_col) = token.start, token.end
        lines[row - 1:end_row] = [lines[row - 1][:col] + "\x00" + lines[end_row - 1][end_col:]]
    return "".join(lines)


def _collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def format_report(results: list[TestResult], score: float, cell_points: float) -> str:
    """A plain-text report: a summary line, then one line per test and, under a failure, its message."""
    ran = [r for r in results if r.outcome != "skipped"]
    passed = sum(r.outcome == "passed" for r in ran)
    lines = [f"Hidden tests: {passed} of {len(ran)} passed"
             + (f", {len(results) - len(ran)} skipped" if len(ran) < len(results) else "")
             + f" - score {score:g} / {cell_points:g}", ""]
    for result in results:
        lines.append(f"[{_MARKS[result.outcome]}] {result.title} ({result.points:g} pt"
                     + (f", {result.note})" if result.note else ")"))
        if result.outcome != "passed" and result.message:
            lines.extend(_wrapped(textwrap.indent(result.message.strip(), "       ")))
    text = "\n".join(lines) + "\n"
    if len(text) > MAX_REPORT_CHARS:
        text = text[:MAX_REPORT_CHARS] + "\n[the rest of this report was cut: it was too long]\n"
    return text


def _wrapped(text: str) -> list[str]:
    """``text``'s lines, those longer than :data:`REPORT_WIDTH` broken at spaces and continued at their own indent,
    so that a report reads without scrolling sideways wherever it is shown (formgrader, feedback, a terminal)."""
    lines = []
    for line in text.splitlines():
        indent = line[:len(line) - len(line.lstrip())]
        lines.extend(textwrap.wrap(line, REPORT_WIDTH, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False) if len(line) > REPORT_WIDTH else [line])
    return lines


def title_of(test_name: str, docstring: str | None) -> str:
    """A test's title: the first line of its docstring, else its name as words."""
    if docstring and docstring.strip():
        return docstring.strip().splitlines()[0]
    return test_name.removeprefix("test_").replace("_", " ")
