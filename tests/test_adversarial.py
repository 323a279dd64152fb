"""Hostile and broken submissions, graded as a TA would: one batch, real nbgrader, real sandboxed kernels, a real
gradebook. Each gets the score it deserves, and nothing else changes: the source, the graders, the gradebook rows
of the others, files on the host, everyone's feedback. The sections follow the classes of docs/threat-model.md.

The toy assignment (tests/conftest.py) is worth 7 points: ``square`` 6 (its gpu test is left out without CUDA)
and a multiple-choice ``answer`` 1.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time

import nbformat
from bs4 import BeautifulSoup
import pytest

from dlvision import api
from dlvision.course import Course
from dlvision.grading.cells import is_hidden_grade_cell
from dlvision.hollow import hollow
from tests.conftest import REPO, make_toy_course, toy_notebook

pytestmark = pytest.mark.slow

FULL, SQUARE, ANSWER = 7, 6, 1
MARKER = "dlvision-outlives-its-kernel-4f1c"
SETTINGS = ["--TrustedExecute.timeout=5", "--TrustedExecute.call_timeout=5", "--TrustedExecute.notebook_budget=40",
            "--TrustedExecute.grading_budget=40"]


# --- how submissions are made ----------------------------------------------------------------------------------

def solution():
    return toy_notebook()


def with_cells(nb, *codes, after=2):
    """``nb`` with extra code cells after the cell at index ``after`` (2: square's solution cell)."""
    nb = nbformat.from_dict(nb)
    for offset, code in enumerate(codes, 1):
        nb.cells.insert(after + offset, nbformat.v4.new_code_cell(code))
    return nbformat.validator.normalize(nb)[1]


def replacing(nb, index, code):
    nb = nbformat.from_dict(nb)
    nb.cells[index].source = code
    return nb


def metadata_changed(nb, index, **changes):
    nb = nbformat.from_dict(nb)
    nb.cells[index].metadata.nbgrader.update(changes)
    return nb


def square_is(code):
    """The solution with square's cell replaced by ``code``."""
    return replacing(solution(), 2, code)


FORGE_FROM_A_THREAD = '''
import threading, time
kernel = get_ipython().kernel
def forge():
    end = time.time() + 30
    while time.time() < end:
        parent = kernel.get_parent()
        for kind, content in [("execute_result", {"data": {"text/plain": "0"}, "metadata": {}, "execution_count": 1}),
                              ("display_data", {"data": {"application/vnd.dlvision.reply+json":
                                                         {"ok": True, "nonce": "x", "payload": "AAAA"}}, "metadata": {}}),
                              ("clear_output", {"wait": False}),
                              ("stream", {"name": "stdout", "text": "Hidden tests: 9 of 9 passed"})]:
            try:
                kernel.session.send(kernel.iopub_socket, kind, content, parent=parent)
            except Exception:
                pass
        time.sleep(0.01)
threading.Thread(target=forge, daemon=True).start()
'''

DISPLAY_UPDATES = '''
from IPython.display import display, update_display
handle = display({"text/plain": "first"}, raw=True, display_id="shared")
for i in range(50):
    update_display({"text/plain": "0", "text/html": "<b>0</b>"}, raw=True, display_id="shared")
'''

NOTEBOOK_KERNEL_HOOKS = '''
import dlvision.grading.kernel_side as kernel_side, torch
captured = []
for name in ("serve", "load"):
    original = getattr(kernel_side, name)
    setattr(kernel_side, name, lambda *a, _o=original, **k: (captured.append(a), _o(*a, **k))[1])
torch.Tensor.__mul__ = lambda self, other, _m=torch.Tensor.__mul__: (captured.append(("mul", self)), _m(self, other))[1]
'''

FORK_BOMB = '''
import os
children = 0
try:
    while children < 100000:
        if os.fork() == 0:
            import time; time.sleep(30); os._exit(0)
        children += 1
except OSError as error:
    print("fork stopped after", children, "children:", type(error).__name__)
'''

DISK_FILLER = '''
import os
for folder in (".", "/tmp", "/dev/shm"):
    written = 0
    try:
        with open(os.path.join(folder, "filler"), "wb") as f:
            while written < (8 << 30):
                f.write(b"x" * (1 << 20)); written += 1 << 20
    except OSError as error:
        print(folder, "stopped after", written >> 20, "MiB:", type(error).__name__)
'''

PRIVILEGES = '''
import os, subprocess
print("uid", os.getuid(), "CapEff", [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0])
for command in (["mount", "-o", "remount,rw", "/"], ["mount", "-o", "remount,rw", "/usr"]):
    print(" ".join(command), "->", subprocess.run(command, capture_output=True).returncode)
import dlvision
for target in (dlvision.__file__, "/usr/bin/python3"):
    try:
        os.chmod(target, 0o777); print("chmod", target, "allowed")
    except OSError as error:
        print("chmod", target, "refused:", type(error).__name__)
    try:
        open(target, "a").write("# hacked"); print("wrote", target)
    except OSError as error:
        print("write", target, "refused:", type(error).__name__)
'''

OUTLIVES = f'''
import subprocess
subprocess.Popen(["sleep", "300", "{MARKER}"], start_new_session=True, stdout=subprocess.DEVNULL)
subprocess.Popen(["sh", "-c", "nohup sleep 301 {MARKER} >/dev/null 2>&1 &"])
'''

PLANTS_LINKS = '''
import os
for name, target in [("toy.ipynb.lnk", "/etc/passwd"), ("source-link", "../../../source"), ("gradebook.db", "/proc/1/root/etc/hostname")]:
    try:
        os.symlink(target, name)
    except OSError as error:
        print(name, type(error).__name__)
os.mkfifo("fifo")
'''

SCRIPTS = ('from IPython.display import HTML, Javascript, display\n'
           'display(HTML("<script>document.title = \\"PWNED\\"</script><img src=x onerror=alert(1)>"))\n'
           'display(Javascript("alert(2)"))')


def submissions(root) -> dict[str, tuple[float | None, object]]:
    """student -> (the score they deserve, or None for "reported and not graded"; their notebook, raw text, or a
    callable that makes the submission folder)."""
    release = nbformat.read(root / "release" / "toy" / "toy.ipynb", as_version=4)
    deleted = solution()
    del deleted.cells[3]
    stub_without_cell = nbformat.from_dict(release)
    del stub_without_cell.cells[3]
    return {
        "solution": (FULL, solution()),
        "stub": (0, release),
        # 1. Trusted outputs are final.
        "forges_outputs_from_a_thread": (FULL, with_cells(solution(), FORGE_FROM_A_THREAD, "import time; time.sleep(2)",
                                                          after=1)),
        "updates_displays": (FULL, with_cells(solution(), DISPLAY_UPDATES, DISPLAY_UPDATES)),
        "stub_forges_outputs": (0, with_cells(release, FORGE_FROM_A_THREAD, "import time; time.sleep(2)", after=1)),
        "stub_turns_hidden_cell_into_solution": (0, metadata_changed(release, 3, solution=True)),
        "stub_turns_hidden_cell_into_markdown": (0, _as_markdown(release, 3)),
        "stub_adds_its_own_grade_cell": (0, _with_fake_grade_cell(release)),
        "stub_deletes_hidden_cell": (0, stub_without_cell),
        "solution_deletes_hidden_cell": (FULL, deleted),
        # 2. Points come from verdicts reached on the trusted side.
        "hollow_zeros": (0, hollow(release, "zeros")),
        "hollow_input": (0, hollow(release, "input")),
        "stub_plus_builtin_cells": (0, with_cells(release, "square = torch.square\nanswer = 'B'", after=5)),
        "stub_plus_own_cells": (0, with_cells(release, "def square(x):\n    return x * x\nanswer = 'B'", after=5)),
        "stub_patches_harness_in_notebook": (0, with_cells(release, NOTEBOOK_KERNEL_HOOKS
                                                           + "\nkernel_side.serve = lambda *a: None", after=5)),
        "solution_cell_patches_harness": (ANSWER, square_is(
            "import dlvision.grading.kernel_side as k\ndef square(x):\n    k._STATE['contract'] = ()\n"
            "    return x * x")),
        "solution_cell_patches_harness_at_top_level": (FULL, square_is(
            "import dlvision.grading.kernel_side as k\nk._STATE['contract'] = ()\ndef square(x):\n    return x * x")),
        "solution_cell_uses_the_builtin": (SQUARE * 4 / 5 + ANSWER, square_is("def square(x):\n    return torch.square(x)")),
        "solution_cell_hides_the_builtin": (SQUARE * 4 / 5 + ANSWER, square_is(
            "p = torch.pow\ndef helper(x):\n    return p(x, 2)\ndef square(x):\n    return helper(x)")),
        "solution_cell_builds_the_name": (ANSWER, square_is(
            "def square(x):\n    return getattr(torch, 'squ' + 'are')(x)")),
        # 3. Grader content never reaches the student.
        "error_carries_the_inputs": (ANSWER, square_is(
            "def square(x):\n    raise ValueError('LEAKED ' + repr(x.tolist()))")),
        "reads_frames": (ANSWER, square_is(
            "import sys\ndef square(x):\n    return sys._getframe(1).f_globals['LEAKED']")),
        # graded code may not open files: numpy's tofile (which opens through its caller's builtins) fails there
        "writes_inputs_to_files": (ANSWER, square_is(
            "import os\ndef square(x):\n    if not os.path.exists('LEAKED.bin'):\n"
            "        x.detach().numpy().tofile('LEAKED.bin')\n    return x * x")),
        "hooks_the_notebook_kernel": (FULL, _hooks_then_prints(solution())),
        # 4. Files are not what they claim to be.
        "notebook_is_a_link_to_the_source": (None, lambda f: os.symlink(root / "source" / "toy" / "toy.ipynb",
                                                                        f / "toy.ipynb")),
        "notebook_is_a_fifo": (None, lambda f: os.mkfifo(f / "toy.ipynb")),
        "notebook_is_a_folder": (None, lambda f: (f / "toy.ipynb").mkdir()),
        "notebook_is_huge": (None, lambda f: (f / "toy.ipynb").write_bytes(b" " * (33 << 20))),
        "extra_files_are_links": (FULL, lambda f: (nbformat.write(solution(), f / "toy.ipynb"),
                                                   os.symlink("/etc/passwd", f / "passwd"),
                                                   os.symlink(root / "gradebook.db", f / "gradebook.db"),
                                                   os.symlink(root / "graders", f / "graders"))),
        "plants_links_in_its_folder": (FULL, with_cells(solution(), PLANTS_LINKS)),
        # 5. The sandbox holds as root.
        "tries_privileges": (FULL, with_cells(solution(), PRIVILEGES)),
        **({"fork_bomb": (FULL, with_cells(solution(), FORK_BOMB))} if os.geteuid() == 0 else {}),
        "fills_the_disk": (FULL, with_cells(solution(), DISK_FILLER)),
        "outlives_its_kernel": (FULL, with_cells(solution(), OUTLIVES)),
        # 6. Every size is bounded on the trusted side.
        "huge_traceback": (FULL, with_cells(solution(), "raise ValueError('x' * 5_000_000)")),
        "huge_html": (FULL, with_cells(solution(), "from IPython.display import HTML, display\n"
                                                   "display(HTML('<p>' + 'y' * 20_000_000 + '</p>'))")),
        "json_bomb_output": (FULL, with_cells(solution(), "from IPython.display import display\n"
                                                          "display({'application/json': [0] * 3_000_000}, raw=True)")),
        "huge_output": (FULL, with_cells(solution(), "for i in range(300000):\n    print('spam', i)")),
        "expanded_tensor_reply": (ANSWER, square_is("def square(x):\n    return torch.zeros(()).expand(1 << 40)")),
        "deeply_nested_answer": (SQUARE, replacing(solution(), 4, "answer = " + "[" * 50 + "'B'" + "]" * 50)),
        # 12.1 Scenarios do not run among the student's names.
        "shadows_names_scenarios_use": (FULL, replacing(solution(), 2, SOLUTION_WITH_SHADOWS)),
        "stub_shadows_names_scenarios_use": (0, with_cells(release, SHADOWS, after=5)),
        "answer_that_equals_everything": (SQUARE, replacing(solution(), 4,
                                                            "class Yes(str):\n    def __eq__(self, other):\n"
                                                            "        return True\nanswer = Yes('A')")),
        # 12.2 Speed points only for fast, correct work.
        "python_loop": (SQUARE * 4 / 5 + ANSWER, square_is(
            "def square(x):\n    return torch.stack([v * v for v in x.reshape(-1)]).reshape(x.shape)")),
        "memoises_its_inputs": (SQUARE * 4 / 5 + ANSWER, square_is(
            "cache = {}\ndef square(x):\n    key = tuple(x.reshape(-1).tolist())\n    if key not in cache:\n"
            "        cache[key] = torch.stack([v * v for v in x.reshape(-1)]).reshape(x.shape)\n    return cache[key]")),
        "sleeps_in_every_call": (SQUARE * 4 / 5 + ANSWER, square_is(
            "import time\ndef square(x):\n    time.sleep(0.002)\n    return x * x")),
        # 12.4 Budgets.
        "huge_code_cell": (SQUARE, with_cells(solution(), "x = 1\n" * 200_000, after=3)),
        # Old friends: loops, exits, memory, snooping, warnings, broken files.
        "loops_forever": (FULL, with_cells(solution(), "while True:\n    pass")),
        "ignores_interrupt": (FULL, with_cells(solution(), "import signal\nsignal.signal(signal.SIGINT, "
                                                           "signal.SIG_IGN)\nwhile True:\n    pass")),
        "calls_sys_exit": (FULL, with_cells(solution(), "import sys\nsys.exit()")),
        "calls_os_exit": (FULL, with_cells(solution(), "import os\nos._exit(0)")),
        "memory_bomb": (FULL, with_cells(solution(), "hog = bytearray(64 << 30)")),
        "snoops": (FULL, with_cells(solution(), SNOOP.replace("ROOT", str(root)))),
        "warns_on_stderr": (FULL, square_is("import sys, warnings\ndef square(x):\n    warnings.warn('deprecated!')\n"
                                            "    print('note', file=sys.stderr)\n    return x * x\nsquare(1.0)")),
        "shows_scripts": (FULL, with_cells(solution(), SCRIPTS)),
        "broken_json": (None, '{"cells": ['),
        "missing_notebook": (None, None),
    }


SHADOWS = ("isinstance = lambda *a: True\nbool = lambda *a: True\nglobals = lambda: {'square': lambda x: x * x}\n"
           "torch = None\nsquare = lambda x: x * x\nanswer = 'B'")
SOLUTION_WITH_SHADOWS = "def square(x):\n    return x * x\n" + SHADOWS.replace("torch = None\n", "").replace(
    "square = lambda x: x * x\nanswer = 'B'", "")
SNOOP = '''import os
for path in ["../../../source/toy/toy.ipynb", "ROOT/graders/toy/test_square.py", "../../../gradebook.db",
             "ROOT/gradebook.db"]:
    try:
        print(open(path).read()[:50])
    except OSError:
        print("blocked", path)
'''


def _as_markdown(nb, index):
    nb = nbformat.from_dict(nb)
    cell = nb.cells[index]
    nb.cells[index] = nbformat.v4.new_markdown_cell("7", metadata=cell.metadata, id=cell.id)
    return nb


def _with_fake_grade_cell(nb):
    nb = nbformat.from_dict(nb)
    fake = nbformat.v4.new_code_cell("print(7)\n7", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "grade_id": "bonus", "points": 100, "schema_version": 3}})
    nb.cells.append(fake)
    return nbformat.validator.normalize(nb)[1]


def _hooks_then_prints(nb):
    return with_cells(with_cells(nb, NOTEBOOK_KERNEL_HOOKS, after=1),
                      "print('CAPTURED', len(captured), captured[:3])", after=len(nb.cells))


# --- the batch ---------------------------------------------------------------------------------------------------

def _hashes(paths):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = make_toy_course(tmp_path_factory.mktemp("adversarial") / "course")
    course = Course(root, SETTINGS)
    api.build(course, ["toy"])
    canary = tmp_path_factory.mktemp("host") / "canary.txt"
    canary.write_text("the host's own file")
    protected = _hashes([p for p in (root / "source").rglob("*") if p.is_file()]
                        + list((root / "graders").rglob("*.py")) + [canary, REPO / "dlvision" / "__init__.py"])
    expected = {}
    for student, (score, submission) in submissions(root).items():
        folder = root / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        if callable(submission):
            submission(folder)
        elif isinstance(submission, str):
            (folder / "toy.ipynb").write_text(submission)
        elif submission is not None:
            nbformat.write(submission, folder / "toy.ipynb")
        expected[student] = score
    start = time.monotonic()
    outcomes = {o.student: o for o in api.autograde(course, "toy")}
    seconds = time.monotonic() - start
    api.feedback(course, "toy")
    return root, course, outcomes, expected, protected, seconds


def autograded(root, student):
    return nbformat.read(root / "autograded" / student / "toy" / "toy.ipynb", as_version=4)


def text_of(nb) -> str:
    return "\n".join(str(o.get("text", "")) + str(o.get("evalue", "")) + str(o.get("data", ""))
                     + "".join(o.get("traceback", [])) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def outputs_in(html: str) -> str:
    """The text of a feedback page's outputs (the student's own code, shown as text, left out)."""
    page = BeautifulSoup(html, "html.parser")
    return "\n".join(area.get_text() for area in page.select(".output_area"))


def students_with(expected, score_is):
    return [s for s, score in expected.items() if score_is(score)]


def test_every_submission_gets_the_score_it_deserves(graded):
    _, _, outcomes, expected, _, _ = graded
    wrong = {}
    for student, score in expected.items():
        outcome = outcomes[student]
        if score is None:
            if outcome.ok:
                wrong[student] = f"graded ({outcome.score}) but should have been refused"
        elif not outcome.ok:
            wrong[student] = f"not graded: {outcome.message}"
        elif abs(outcome.score - score) > 1e-6:
            wrong[student] = f"scored {outcome.score:g}, deserves {score:g}"
    assert not wrong, wrong


def test_a_refused_submission_says_why_and_never_reaches_the_gradebook(graded):
    root, _, outcomes, expected, _, _ = graded
    refused = students_with(expected, lambda s: s is None)
    for student in refused:
        assert "submit again" in outcomes[student].message, outcomes[student].message
        assert not (root / "autograded" / student).exists()
    with sqlite3.connect(root / "gradebook.db") as db:
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        students = {row[0] for row in db.execute("select id from student")}
    assert not set(refused) & students
    assert set(students_with(expected, lambda s: s is not None)) <= students


def test_every_hidden_cell_holds_exactly_the_trusted_report_and_score(graded):
    root, _, outcomes, expected, _, _ = graded
    for student in students_with(expected, lambda s: s is not None):
        for cell in autograded(root, student).cells:
            if is_hidden_grade_cell(cell) and cell.metadata.nbgrader.grade_id != "bonus":
                kinds = [o.output_type for o in cell.outputs]
                assert kinds == ["stream", "execute_result"], (student, kinds)
                assert cell.outputs[0].text.startswith("Hidden tests:"), (student, cell.outputs[0].text[:80])
                float(cell.outputs[1].data["text/plain"])


def test_nothing_outside_a_submission_changed(graded):
    *_, protected, _ = graded
    assert _hashes(protected) == protected


def test_a_cell_the_gradebook_does_not_know_earns_nothing(graded):
    root = graded[0]
    cells = autograded(root, "stub_adds_its_own_grade_cell").cells
    assert not any(c.metadata.get("nbgrader", {}).get("grade_id") == "bonus" for c in cells)


def test_nothing_the_graders_sent_reaches_notebooks_or_feedback(graded):
    root, *_ = graded
    for student in ("error_carries_the_inputs", "reads_frames", "hooks_the_notebook_kernel",
                    "writes_inputs_to_files"):
        shown = text_of(autograded(root, student)) + "".join(
            outputs_in(p.read_text()) for p in (root / "feedback" / student / "toy").glob("*.html"))
        # a report may quote the student's own line ("at cell 'square', line 2: ..."): that is theirs to see
        own = {line.strip() for cell in nbformat.read(root / "submitted" / student / "toy" / "toy.ipynb", 4).cells
               for line in cell.source.splitlines() if line.strip()}
        shown = "\n".join(line for line in shown.splitlines() if not any(line.endswith(o) for o in own))
        assert "LEAKED" not in shown and "gradient_of_square" not in shown and "many_numbers" not in shown
        assert "expect_close" not in shown and "graders/" not in shown
    assert "CAPTURED 0 []" in text_of(autograded(root, "hooks_the_notebook_kernel"))


def test_only_the_autograded_notebook_comes_back_from_a_kernel(graded):
    root, _, _, expected, _, _ = graded
    for student in students_with(expected, lambda s: s is not None):
        folder = root / "autograded" / student / "toy"
        assert {p.name for p in folder.iterdir()} <= {"toy.ipynb", "timestamp.txt", "submission_secret.txt",
                                                      ".dlvision-graded.json"}, student
        assert not any(p.is_symlink() for p in folder.iterdir())


def test_the_sandbox_kernel_has_no_rights_when_grading_runs_as_root(graded):
    output = text_of(autograded(graded[0], "tries_privileges"))
    if os.geteuid() == 0:
        assert "uid 0" not in output and "CapEff 0000000000000000" in output
    assert "allowed" not in output and "wrote" not in output
    assert "remount,rw / -> 0" not in output and "remount,rw /usr -> 0" not in output


def test_fork_bombs_and_disk_fillers_are_stopped_inside_the_sandbox(graded):
    root = graded[0]
    if os.geteuid() == 0:  # the process limit needs a uid of the kernel's own, which only root can give it
        assert "fork stopped after" in text_of(autograded(root, "fork_bomb"))
    filled = text_of(autograded(root, "fills_the_disk"))
    assert filled.count("stopped after") == 3 and "8192 MiB" not in filled


def test_no_process_outlives_its_kernel():
    listed = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert MARKER not in listed


def test_outputs_are_capped_in_every_cell_and_every_kind(graded):
    root = graded[0]
    for student in ("huge_traceback", "huge_html", "huge_output", "json_bomb_output"):
        size = (root / "autograded" / student / "toy" / "toy.ipynb").stat().st_size
        assert size < 400_000, (student, size)


def test_feedback_carries_no_live_script(graded):
    root = graded[0]
    page = BeautifulSoup((root / "feedback" / "shows_scripts" / "toy" / "toy.html").read_text(), "html.parser")
    scripts = " ".join(tag.get_text() for tag in page.find_all("script"))
    assert "PWNED" not in scripts and "alert" not in scripts
    assert not [(tag.name, a) for tag in page.find_all(True) for a in tag.attrs if a.lower().startswith("on")]
    assert "PWNED" in page.get_text()  # the student's code itself is shown, as text


def test_feedback_shows_the_report_but_no_grader_source_or_path(graded):
    html = (graded[0] / "feedback" / "stub" / "toy" / "toy.html").read_text()
    assert "Hidden tests: 0 of" in html and "NotImplementedError" in html
    assert "graders/" not in html and "gradient_of_square" not in html and "expect_close" not in html


def test_a_batch_of_hostile_submissions_stays_within_its_budgets(graded):
    *_, expected, _, seconds = graded
    assert seconds < 15 * len(expected), f"{len(expected)} submissions took {seconds:.0f} s"


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


def test_two_autograde_runs_at_once_keep_each_others_grades(toy_course):
    """A failing submission in one run never undoes what another run saved meanwhile."""
    course = Course(toy_course, ["--TrustedExecute.timeout=10"])
    api.build(course, ["toy"])
    for student in ("ada", "bo", "cy"):
        folder = toy_course / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        nbformat.write(toy_notebook(), folder / "toy.ipynb")
    (toy_course / "submitted" / "bo" / "toy" / "toy.ipynb").write_text('{"cells": [')
    runs = [subprocess.Popen([sys.executable, "-m", "dlvision", "--course", str(toy_course), "autograde", "toy",
                              "--student", s, "--student", "bo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for s in ("ada", "cy")]
    for run in runs:
        run.communicate(timeout=300)
    with sqlite3.connect(toy_course / "gradebook.db") as db:
        saved = dict(db.execute("select student.id, count(*) from submitted_assignment "
                                "join student on student.id = submitted_assignment.student_id group by student.id"))
    assert saved == {"ada": 1, "cy": 1}


def test_calls_just_under_the_time_limit_stop_at_the_submissions_budget(toy_course):
    """Each call of square takes almost the call timeout; the submission is stopped at its grading budget and
    scored on what finished, so it cannot hold up the batch."""
    course = Course(toy_course, ["--TrustedExecute.call_timeout=4", "--TrustedExecute.grading_budget=10"])
    api.build(course, ["toy"])
    folder = toy_course / "submitted" / "slow" / "toy"
    folder.mkdir(parents=True)
    nbformat.write(replacing(solution(), 2, "import time\ndef square(x):\n    time.sleep(3.5)\n    return x * x"),
                   folder / "toy.ipynb")
    start = time.monotonic()
    [outcome] = api.autograde(course, "toy")
    assert outcome.ok and outcome.score < FULL
    assert time.monotonic() - start < 60
    report = text_of(autograded(toy_course, "slow"))
    assert "time budget for grading this submission ran out" in report
