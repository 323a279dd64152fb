"""The CLI's errors name the fix and exit non-zero; they never need a traceback to be understood."""
import shutil

import nbformat
import pytest
from click.testing import CliRunner

from dlvision.cli import main


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_a_folder_without_nbgrader_config_is_not_a_course(tmp_path):
    code, output = run("--course", tmp_path, "grades")
    assert code != 0 and "has no nbgrader_config.py" in output and "--course" in output


def test_an_unknown_assignment_lists_the_known_ones(toy_course):
    code, output = run("--course", toy_course, "build", "ch99")
    assert code != 0 and "unknown assignment ch99" in output and "the course has toy" in output


def test_autograde_before_build_says_to_build(toy_course):
    code, output = run("--course", toy_course, "autograde", "toy")
    assert code != 0 and "run `dlvision build toy` first" in output


def test_grades_before_build_says_to_build(toy_course):
    code, output = run("--course", toy_course, "grades")
    assert code != 0 and "no gradebook" in output


def test_build_refuses_unsound_sources_and_lists_every_problem(toy_course):
    (toy_course / "graders" / "toy" / "test_extra.py").write_text("")
    code, output = run("--course", toy_course, "build", "toy")
    assert code != 0 and "test_extra.py belongs to no hidden cell" in output
    assert not (toy_course / "release").exists()


def test_a_setting_that_is_not_class_trait_value_is_refused(toy_course):
    code, output = run("--course", toy_course, "build", "toy", "--timeout")
    assert code != 0 and "--Class.trait=value" in output


@pytest.mark.slow
def test_build_makes_release_and_solutions_without_grader_paths(toy_course):
    code, output = run("--course", toy_course, "build")
    assert code == 0, output
    release = (toy_course / "release" / "toy" / "toy.ipynb").read_text()
    solution = (toy_course / "solutions" / "toy" / "toy.ipynb").read_text()
    html = (toy_course / "solutions" / "toy" / "toy.html").read_text()
    assert "NotImplementedError" in release and "return x * x" not in release
    assert "return x * x" in solution
    for text in (release, solution, html):
        assert "graders/" not in text
    assert (toy_course / "gradebook.db").is_file()


@pytest.mark.slow
def test_grades_csv_lists_every_student(toy_course, tmp_path):
    assert run("--course", toy_course, "build")[0] == 0
    for student in ("ada", "bo"):
        folder = toy_course / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        shutil.copy(toy_course / ("source" if student == "ada" else "release") / "toy" / "toy.ipynb", folder)
    code, output = run("--course", toy_course, "autograde", "toy", "--TrustedExecute.timeout=10")
    assert code == 0, output
    code, output = run("--course", toy_course, "grades", "--csv", tmp_path / "grades.csv")
    assert code == 0, output
    assert (tmp_path / "grades.csv").read_text().splitlines() == [
        "student,assignment,score,max_score,auto,auto_max,by_hand,by_hand_max,to_grade_by_hand",
        "ada,toy,7.0,7.0,7.0,7.0,0.0,0.0,0.0", "bo,toy,0.0,7.0,0.0,7.0,0.0,0.0,0.0"]
