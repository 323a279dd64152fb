"""`dlvision build` refuses sources that would grade wrongly, and says what to fix."""
import nbformat
import pytest

from dlvision.course import Course
from dlvision.lint import lint_assignment


def lint(root):
    return lint_assignment(Course(root), "toy")


def edit_notebook(root, change):
    path = root / "source" / "toy" / "toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    change(nb)
    nbformat.write(nb, path)


def test_the_toy_course_is_sound(toy_course):
    assert lint(toy_course) == []


def test_duplicate_grade_ids_are_reported(toy_course):
    edit_notebook(toy_course, lambda nb: nb.cells[1].metadata.nbgrader.update(grade_id="square"))
    assert any("grade_id 'square' is used 2 times" in p for p in lint(toy_course))


def test_outputs_in_a_source_notebook_are_reported(toy_course):
    edit_notebook(toy_course, lambda nb: nb.cells[1].outputs.append(
        nbformat.v4.new_output("stream", name="stdout", text="hi")))
    assert any("has outputs; clear them" in p for p in lint(toy_course))


def test_a_grade_cell_with_plain_asserts_is_refused(toy_course):
    edit_notebook(toy_course, lambda nb: setattr(nb.cells[3], "source", "assert square(2) == 4"))
    assert any("declares no graders" in p for p in lint(toy_course))


def test_a_declared_grader_that_does_not_exist_is_reported(toy_course):
    edit_notebook(toy_course, lambda nb: setattr(nb.cells[3], "source", "# graders: graders/toy/test_cube.py"))
    problems = lint(toy_course)
    assert any("names graders/toy/test_cube.py, which does not exist" in p for p in problems)
    assert any("test_square.py belongs to no hidden cell" in p for p in problems)


def test_points_that_do_not_add_up_are_reported(toy_course):
    edit_notebook(toy_course, lambda nb: nb.cells[3].metadata.nbgrader.update(points=5))
    assert any("worth 5 points but its tests carry 6" in p for p in lint(toy_course))


def test_a_test_without_points_is_reported(toy_course):
    grader = toy_course / "graders" / "toy" / "test_square.py"
    grader.write_text(grader.read_text() + "\n\ndef test_unweighted(student):\n    pass\n")
    assert any("test_unweighted carries no @points" in p for p in lint(toy_course))


def test_a_grader_that_does_not_import_is_reported(toy_course):
    (toy_course / "graders" / "toy" / "test_square.py").write_text("import no_such_module\n")
    assert any("could not be collected" in p for p in lint(toy_course))


def test_a_cell_graded_only_on_gpu_is_refused(toy_course):
    (toy_course / "graders" / "toy" / "test_square.py").write_text(
        "from dlvision.grading import gpu, points\n\n@gpu\n@points(4)\ndef test_cuda(student):\n    pass\n")
    assert any("every test needs a GPU" in p for p in lint(toy_course))


PATCH = "@@\n-    return x * x\n+    return x\n"


@pytest.mark.parametrize("header, says", [
    ("# mutant: x\n# replaces: imports\n# caught-by: test_square\n", "not a solution cell"),
    ("# mutant: x\n# replaces: square\n# caught-by: square\n", "not a hidden grade cell"),
    ("# mutant: x\n", "lacks # replaces:"),
])
def test_a_mutant_must_name_a_solution_cell_and_the_hidden_cells_that_catch_it(toy_course, header, says):
    (toy_course / "graders" / "toy" / "mutants" / "odd.diff").write_text(header + PATCH)
    assert any(says in p for p in lint(toy_course))


def test_a_mutant_that_no_longer_applies_to_its_solution_fails_loudly(toy_course):
    edit_notebook(toy_course, lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source.replace(
        "return x * x", "return x ** 2")))
    assert any("mutant doubled no longer applies to cell 'square'" in p for p in lint(toy_course))


def test_a_solution_that_graded_code_may_not_use_is_refused(toy_course):
    edit_notebook(toy_course, lambda nb: setattr(nb.cells[2], "source",
                                                 "def square(x):\n    ### BEGIN SOLUTION\n    return eval('x * x')\n"
                                                 "    ### END SOLUTION"))
    assert any("square was not graded" in p and "eval" in p for p in lint(toy_course))
