"""`dlvision demo`, the README's first command, on the course's real first assignment."""
import pytest
from click.testing import CliRunner

from dlvision import api
from dlvision.cli import main
from dlvision.course import Course, read_notebook
from dlvision.grading.cells import is_hidden_grade_cell
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = CliRunner().invoke(main, ["--course", str(REPO), "demo", "--folder", str(folder)])
    return folder, result


def test_the_demo_runs_to_the_gradebook(demo):
    _, result = demo
    assert result.exit_code == 0, result.output
    assert "Gradebook" in result.output
    for student in ("ada", "ben", "cleo", "dev", "eve"):
        assert student in result.output


def hidden_cells() -> set[str]:
    nb = read_notebook(REPO / "source" / "ch02_neurons" / "ch02_neurons.ipynb")
    return {c.metadata.nbgrader.grade_id for c in nb.cells if is_hidden_grade_cell(c)}


def test_the_full_solution_scores_full_marks_on_every_hidden_cell_and_the_blank_one_zero(demo):
    course = Course(demo[0])
    full, blank = (api.cell_scores(course, "ch02_neurons", s) for s in ("ada", "cleo"))
    assert all(full[cell][0] == full[cell][1] for cell in hidden_cells())
    assert all(blank[cell][0] == 0 for cell in hidden_cells())


def test_the_partly_wrong_student_loses_some_points_but_not_all(demo):
    score, max_score = api.submission_score(Course(demo[0]), "ch02_neurons", "ben")
    assert 0 < score < max_score


def test_the_cheating_student_gets_no_hidden_test_points(demo):
    course = Course(demo[0])
    cells = api.cell_scores(course, "ch02_neurons", "eve")
    assert hidden_cells() and all(cells[cell][0] == 0 for cell in hidden_cells())


def test_every_student_has_feedback(demo):
    for student in ("ada", "ben", "cleo", "dev", "eve"):
        assert list((demo[0] / "feedback" / student / "ch02_neurons").glob("*.html"))
