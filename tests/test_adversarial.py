"""Real nbgrader, real kernels, a real gradebook: hostile and broken submissions get the score they deserve
and leave everything else intact. One batch grades them all, as a TA would."""
import hashlib
import sqlite3

import nbformat
import pytest

from dlvision import api
from dlvision.course import Course
from tests.conftest import toy_notebook

pytestmark = pytest.mark.slow

WRONG = "def square(x):\n    return x"


def with_cell(code, after=2):
    """The solution with an extra cell after the cell at ``after``."""
    nb = toy_notebook()
    nb.cells.insert(after + 1, nbformat.v4.new_code_cell(code))
    return nb


def replacing_square(code):
    nb = toy_notebook()
    nb.cells[2].source = code
    return nb


def submissions(root):
    """student -> notebook (or raw text for a broken file, or None for a missing one)."""
    release = nbformat.read(root / "release" / "toy" / "toy.ipynb", as_version=4)
    deleted = toy_notebook()
    del deleted.cells[3]
    cheat = ("import torch, torch.testing, dlvision.checks\n"
             "torch.testing.assert_close = lambda *a, **k: None\n"
             "torch.allclose = lambda *a, **k: True\n"
             "dlvision.checks.expect_close = lambda *a, **k: None\n" + WRONG)
    snoop = (f"import os\nfor path in ['../../../source/toy/toy.ipynb', '{root}/graders/toy/test_square.py']:\n"
             "    try:\n        print(open(path).read()[:50])\n    except OSError as e:\n        print('blocked', path)\n"
             f"for path in ['../../../gradebook.db', '{root}/gradebook.db']:\n"
             "    try:\n        open(path, 'w').write('overwritten')\n        print('wrote', path)\n"
             "    except OSError as e:\n        print('blocked', path)\n")
    return {
        "solution": toy_notebook(),
        "stub": release,
        "loops_forever": with_cell("while True:\n    pass"),
        "ignores_interrupt": with_cell("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"),
        "calls_sys_exit": with_cell("import sys\nsys.exit()"),
        "calls_os_exit": with_cell("import os\nos._exit(0)"),
        "huge_output": with_cell("for i in range(300000):\n    print('spam', i)"),
        "memory_bomb": with_cell("hog = bytearray(64 << 30)"),
        "patches_checks": replacing_square(cheat),
        "snoops": with_cell(snoop),
        "warns_on_stderr": replacing_square("import sys, warnings\ndef square(x):\n"
                                            "    warnings.warn('deprecated!')\n    print('note', file=sys.stderr)\n"
                                            "    return x * x\nsquare(1.0)"),
        "deleted_grade_cell": deleted,
        "broken_json": '{"cells": [',
        "missing_notebook": None,
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    from tests.conftest import toy_course

    root = toy_course.__wrapped__(tmp_path_factory.mktemp("adversarial"))
    course = Course(root, ["--TrustedExecute.timeout=5", "--TrustedExecute.call_timeout=5"])
    api.build(course, ["toy"])
    protected = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "source").rglob("*") if p.is_file()}
    protected |= {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "graders").rglob("*.py")}
    for student, nb in submissions(root).items():
        folder = root / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        if isinstance(nb, str):
            (folder / "toy.ipynb").write_text(nb)
        elif nb is not None:
            nbformat.write(nb, folder / "toy.ipynb")
    outcomes = {o.student: o for o in api.autograde(course, "toy")}
    api.feedback(course, "toy")
    return root, course, outcomes, protected


def outputs(root, student, index=None):
    nb = nbformat.read(root / "autograded" / student / "toy" / "toy.ipynb", as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    return "\n".join(str(o.get("text", "")) + str(o.get("evalue", "")) + str(o.get("data", ""))
                     for c in (cells if index is None else [cells[index]]) for o in c.outputs)


@pytest.mark.parametrize("student, score", [
    ("solution", 4), ("stub", 0), ("loops_forever", 4), ("calls_sys_exit", 4), ("huge_output", 4),
    ("memory_bomb", 4), ("patches_checks", 0), ("snoops", 4), ("warns_on_stderr", 4), ("deleted_grade_cell", 4),
    ("ignores_interrupt", 0), ("calls_os_exit", 0),
])
def test_each_submission_gets_the_score_it_deserves(graded, student, score):
    _, _, outcomes, _ = graded
    assert outcomes[student].ok, outcomes[student].message
    assert outcomes[student].score == score


def test_a_kernel_that_had_to_be_restarted_says_why_in_the_cell(graded):
    root = graded[0]
    assert "ignored the interrupt" in outputs(root, "ignores_interrupt")
    assert "stopped the kernel" in outputs(root, "calls_os_exit")


def test_a_broken_or_missing_notebook_is_reported_and_never_reaches_the_gradebook(graded):
    root, _, outcomes, _ = graded
    assert not outcomes["broken_json"].ok and "is not a valid notebook (not JSON" in outcomes["broken_json"].message
    assert not outcomes["missing_notebook"].ok and "toy.ipynb is missing" in outcomes["missing_notebook"].message
    with sqlite3.connect(root / "gradebook.db") as db:
        students = {row[0] for row in db.execute("select id from student")}
    assert "solution" in students and not {"broken_json", "missing_notebook"} & students


def test_the_gradebook_source_and_graders_are_intact(graded):
    root, _, _, protected = graded
    with sqlite3.connect(root / "gradebook.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in protected} == protected


def test_the_snooping_student_could_read_neither_source_nor_graders(graded):
    root = graded[0]
    text = outputs(root, "snoops")
    assert "blocked ../../../source/toy/toy.ipynb" in text and f"blocked {root}/graders/toy/test_square.py" in text
    # Its writes to the gradebook's paths stay in the sandbox's private scratch space.
    assert (root / "gradebook.db").read_bytes().startswith(b"SQLite format 3")


def test_huge_output_is_truncated_in_the_graded_notebook(graded):
    root = graded[0]
    assert "spam 299999" not in outputs(root, "huge_output")
    assert (root / "autograded" / "huge_output" / "toy" / "toy.ipynb").stat().st_size < 200_000


def test_the_hidden_cell_shows_the_trusted_report(graded):
    text = outputs(graded[0], "patches_checks", index=2)
    assert "Hidden tests: 0 of 2 passed, 1 skipped - score 0 / 4" in text
    assert "[FAIL] square matches reference (2 pt)" in text and "Hint: Multiply x by itself." in text


def test_feedback_shows_the_report_but_no_grader_source_or_path(graded):
    html = (graded[0] / "feedback" / "stub" / "toy" / "toy.html").read_text()
    assert "Hidden tests: 0 of 2 passed" in html and "NotImplementedError" in html
    assert "graders/" not in html and "gradient_of_square" not in html and "expect_close" not in html


def test_a_broken_grader_fails_the_submission_loudly_and_leaves_the_gradebook_as_it_was(toy_course):
    course = Course(toy_course, ["--TrustedExecute.timeout=10"])
    api.build(course, ["toy"])
    (toy_course / "graders" / "toy" / "test_square.py").write_text("import no_such_module\n")
    folder = toy_course / "submitted" / "ada" / "toy"
    folder.mkdir(parents=True)
    nbformat.write(toy_notebook(), folder / "toy.ipynb")
    [outcome] = api.autograde(course, "toy")
    assert not outcome.ok and "could not be collected" in outcome.message
    with sqlite3.connect(toy_course / "gradebook.db") as db:
        assert db.execute("select count(*) from submitted_assignment").fetchone() == (0,)
