"""A small course, built in each test that needs one: one assignment ("toy") with a function to write and a
multiple-choice question, hidden graders for both, and three mutants."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]

SOLUTION = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
ANSWER = "### BEGIN SOLUTION\nanswer = \"B\"\n### END SOLUTION"


def hidden(grader: str) -> str:
    return (f"# Hidden tests run here when your notebook is graded.\n### BEGIN HIDDEN TESTS\n"
            f"# graders: graders/toy/{grader}\n### END HIDDEN TESTS")


#: square's graders: 6 points, 5 of them without a GPU. A full solution scores 6 (the gpu test is excluded).
GRADER = '''
import torch
from dlvision.grading import (points, gpu, requires, expect_close, expect_implemented_without, expect_keeps_device,
                              expect_on_device, speed_ratio)


@points(2)
def test_square_matches_reference(student):
    x = torch.randn(3, 4, dtype=torch.float64)
    expect_close(student.square(x), x * x, hint="Multiply x by itself.")
    expect_keeps_device(student, "square", x, hint="Make new tensors on x.device.")


def gradient_of_square(x):
    x = x.clone().requires_grad_()
    square(x).sum().backward()
    return x.grad


@points(1)
def test_square_has_the_right_gradient(student):
    x = torch.randn(5, dtype=torch.float64)
    expect_close(student.run(gradient_of_square, x), 2 * x, name="the gradient")


@points(1)
@requires("test_square_matches_reference")
def test_square_is_implemented_by_hand(student):
    expect_implemented_without(student, "square", ["torch.square", "torch.pow", "torch.nn.functional"],
                               attributes={"square", "pow"}, calling=((torch.ones(2),), {}))


def many_numbers(generator):
    import torch
    return (torch.randn(20000, generator=generator),), {}


@points(1)
@requires("test_square_matches_reference")
def test_square_is_vectorised(student):
    ratio = speed_ratio(student, "square", lambda x: x * x, many_numbers, repeats=3, min_seconds=0.05)
    assert ratio < 100, f"square took {ratio:.0f} times as long as x * x (allowed: 100; a loop takes thousands)."


@gpu
@points(1)
@requires("test_square_matches_reference")
def test_square_keeps_the_cuda_device(student, device):
    x = torch.randn(3)
    expect_on_device(student.on(device).square(x), device, x * x)
'''

QUESTION_GRADER = '''
from dlvision.grading import points


@points(1)
def test_the_answer_is_b(student):
    answer = student.value("answer")
    assert answer == "B", f"the answer {answer!r} is not right."
'''


#: square's mutants: (name, what it does, the line that replaces `return x * x`).
MUTANTS = [("doubled", "doubles instead of squaring", "return 2 * x"),
           ("detached", "a detached result kills the gradient", "return (x * x).detach()"),
           ("cpu_zeros", "adds a tensor made on the CPU, wrong for CUDA inputs",
            "return x * x + torch.zeros(x.shape, dtype=x.dtype)")]


def nbgrader_cell(kind: str, source: str, grade_id: str, points: float = 0, **flags) -> nbformat.NotebookNode:
    """A code or markdown cell with nbgrader metadata."""
    meta = {"grade": False, "solution": False, "locked": False, "grade_id": grade_id, "schema_version": 3, **flags}
    if meta["grade"]:
        meta["points"] = points
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    return make(source, metadata={"nbgrader": meta})


def toy_notebook() -> nbformat.NotebookNode:
    """Cells: 0 markdown, 1 imports, 2 square (solution), 3 its hidden cell, 4 answer (solution), 5 its hidden
    cell."""
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# Squares"),
                nbgrader_cell("code", "import torch", "imports", locked=True),
                nbgrader_cell("code", SOLUTION, "square", solution=True),
                nbgrader_cell("code", hidden("test_square.py"), "test_square", points=6, grade=True, locked=True),
                nbgrader_cell("code", ANSWER, "answer", solution=True),
                nbgrader_cell("code", hidden("test_question.py"), "test_question", points=1, grade=True,
                              locked=True)]
    return nbformat.validator.normalize(nb)[1]


def make_toy_course(root: Path) -> Path:
    """An unbuilt course folder at ``root`` with the toy assignment, its graders and three mutants."""
    (root / "source" / "toy").mkdir(parents=True)
    (root / "graders" / "toy" / "mutants").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    nbformat.write(toy_notebook(), root / "source" / "toy" / "toy.ipynb")
    (root / "graders" / "toy" / "test_square.py").write_text(GRADER)
    (root / "graders" / "toy" / "test_question.py").write_text(QUESTION_GRADER)
    for name, description, change in MUTANTS:
        (root / "graders" / "toy" / "mutants" / f"{name}.diff").write_text(
            f"# mutant: {description}\n# replaces: square\n# caught-by: test_square\n@@\n"
            f"-    return x * x\n+    {change}\n")
    return root


@pytest.fixture
def toy_course(tmp_path) -> Path:
    """An unbuilt course folder with the toy assignment."""
    return make_toy_course(tmp_path / "course")
