"""A small course, built in each test that needs one: one assignment ("toy") with one function to write."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]

SOLUTION = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
HIDDEN = ("# Hidden tests for square run here when your notebook is graded.\n### BEGIN HIDDEN TESTS\n"
          "# graders: graders/toy/test_square.py\n### END HIDDEN TESTS")
GRADER = '''
import torch
from dlvision.grading import points, gpu, expect_close


@points(2)
def test_square_matches_reference(student):
    x = torch.randn(3, 4, dtype=torch.float64)
    expect_close(student.square(x), x * x, hint="Multiply x by itself.")


def gradient_of_square(x):
    x = x.clone().requires_grad_()
    square(x).sum().backward()
    return x.grad


@points(1)
def test_square_has_the_right_gradient(student):
    x = torch.randn(5, dtype=torch.float64)
    expect_close(student.run(gradient_of_square, x), 2 * x, name="the gradient")


@gpu
@points(1)
def test_square_keeps_the_cuda_device(student):
    x = torch.randn(3, device="cuda")
    expect_close(student.square(x), x * x)
'''


def nbgrader_cell(kind: str, source: str, grade_id: str, points: float = 0, **flags) -> nbformat.NotebookNode:
    """A code or markdown cell with nbgrader metadata."""
    meta = {"grade": False, "solution": False, "locked": False, "grade_id": grade_id, "schema_version": 3, **flags}
    if meta["grade"]:
        meta["points"] = points
    make = nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell
    return make(source, metadata={"nbgrader": meta})


def toy_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# Squares"),
                nbgrader_cell("code", "import torch", "imports", locked=True),
                nbgrader_cell("code", SOLUTION, "square", solution=True),
                nbgrader_cell("code", HIDDEN, "test_square", points=4, grade=True, locked=True)]
    return nb


@pytest.fixture
def toy_course(tmp_path) -> Path:
    """An unbuilt course folder with the toy assignment, its grader and two mutants."""
    root = tmp_path / "course"
    (root / "source" / "toy").mkdir(parents=True)
    (root / "graders" / "toy" / "mutants").mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    nbformat.write(toy_notebook(), root / "source" / "toy" / "toy.ipynb")
    (root / "graders" / "toy" / "test_square.py").write_text(GRADER)
    (root / "graders" / "toy" / "mutants" / "doubled.py").write_text(textwrap.dedent("""\
        # mutant: doubles instead of squaring
        # replaces: square
        # caught-by: test_square
        def square(x):
            return 2 * x
        """))
    (root / "graders" / "toy" / "mutants" / "detached.py").write_text(textwrap.dedent("""\
        # mutant: a detached result kills the gradient
        # replaces: square
        # caught-by: test_square
        def square(x):
            return (x * x).detach()
        """))
    return root
