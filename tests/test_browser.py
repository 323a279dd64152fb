"""The course in a real browser, as its users see it: a student in JupyterLab and a TA in nbgrader's formgrader.

A course folder holds the repository's ``ch02_neurons``, built with ``dlvision build``. The student's JupyterLab
(the project's ``jupyter lab``, nbgrader's lab extensions, the environment's python3 kernel) serves a folder with
the released notebook and a copy with the solutions filled in; headless Chromium opens each, runs all cells from
the Run menu, and checks what the student sees, then presses nbgrader's Validate. The TA's JupyterLab serves the
course folder, where the demo's partly wrong student has been autograded: formgrader shows the trusted report in
each hidden cell and no grader code, the TA scores the written answer, and the gradebook changes.

Screenshots go to each test's ``tmp_path``; with ``DLVISION_SCREENSHOTS=docs`` the README's two are also written
there (``jupyterlab-student.png``, ``formgrader-ta.png``).
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.conftest import REPO
from tests.jupyter_browser import JupyterServer, chromium, missing_browser, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.browser,
              pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")]

BIN = Path(sys.executable).parent
ASSIGNMENT = "ch02_neurons"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
PARTLY_WRONG = "ben"          # the demo's partly wrong student (dlvision/demo.py)
WRITTEN_ANSWER = "sigmoid_saturation"  # the cell graded by hand
CSS = "css selector"


def run(args, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def screenshot(driver, folder: Path, name: str, docs: bool = False) -> Path:
    """Save a screenshot under ``folder`` (and in $DLVISION_SCREENSHOTS for the README's ones)."""
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"could not save {path}"
    if docs and os.environ.get("DLVISION_SCREENSHOTS"):
        target = Path(os.environ["DLVISION_SCREENSHOTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / f"{name}.png")
    return path


# --- fixtures: the course, the browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """A course folder with the repository's ch02_neurons, built."""
    root = tmp_path_factory.mktemp("course")
    shutil.copy(REPO / "nbgrader_config.py", root)
    for part in ("source", "graders"):
        shutil.copytree(REPO / part / ASSIGNMENT, root / part / ASSIGNMENT)
    run([BIN / "dlvision", "build", ASSIGNMENT], root)
    return root


@pytest.fixture(scope="module")
def chromium_driver(tmp_path_factory):
    driver = chromium(tmp_path_factory.mktemp("chromium"), 1400, 1000)
    yield driver
    driver.quit()


@pytest.fixture
def browser(chromium_driver, tmp_path):
    """The browser, whose last page is kept as ``last-page.png`` in the test's tmp_path (to see why a test failed)."""
    yield chromium_driver
    chromium_driver.save_screenshot(str(tmp_path / "last-page.png"))


def start_server(root: Path, home: Path) -> JupyterServer:
    home.mkdir(parents=True, exist_ok=True)
    server = JupyterServer(root, home, home / "jupyter.log")
    # matplotlib's font cache, built once here rather than as a message on stderr in the student's first plot
    subprocess.run([sys.executable, "-c", "import matplotlib.pyplot"], env=server.env(), check=True, timeout=300)
    return server.start()


# --- JupyterLab, as a student uses it ---------------------------------------------------------------------------

class Lab:
    """One notebook open in JupyterLab: Run menu, File menu, the Validate button, what the outputs show."""

    def __init__(self, server: JupyterServer, driver, path: str, workspace: str):
        self.server, self.driver, self.path = server, driver, path
        self.cells = len(nbformat.read(server.root / path, as_version=4).cells)
        driver.get(server.page(f"/lab/workspaces/{workspace}/tree/{path}"))
        wait_for(lambda: self.js("return document.querySelectorAll('.jp-NotebookPanel .jp-Notebook-cell')"
                                 ".length") == self.cells, 180, f"{path}'s {self.cells} cells in the page")
        wait_for(lambda: self.kernel_state() == "idle" and self.indicator() == "idle", 240,
                 f"the kernel of {path} to start")
        self.hide_left_sidebar()

    def js(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def session(self) -> dict | None:
        return next((s for s in self.server.api("/api/sessions") if s["path"] == self.path), None)

    def kernel_state(self) -> str | None:
        session = self.session()
        return session["kernel"]["execution_state"] if session else None

    def indicator(self) -> str | None:
        return self.js("return document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator')"
                       "?.dataset.status")

    def hide_left_sidebar(self) -> None:
        """Fold the file browser away, as a student reading the notebook would."""
        tab = self.driver.find_elements(CSS, ".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if tab:
            tab[0].click()
            wait_for(lambda: not self.driver.find_elements(CSS, ".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current"),
                     30, "the left sidebar to fold")

    def menu(self, menu: str, command: str) -> None:
        """Choose a command from a menu of the menu bar, as a user does."""
        bar = wait_for(lambda: [e for e in self.driver.find_elements(CSS, ".lm-MenuBar-item")
                                if e.text.strip() == menu], 30, f"the {menu} menu")[0]
        bar.click()
        item = wait_for(lambda: self.driver.find_element(
            CSS, f"#jp-mainmenu-{menu.lower()} li.lm-Menu-item[data-command='{command}']"), 30, f"{menu} > {command}")
        item.click()

    def prompts(self) -> list[str]:
        return self.js("return [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]"
                       ".map(e => e.innerText.trim())")

    def run_all(self, timeout: float = 420) -> list[str]:
        """Run > Run All Cells, then wait until the kernel has finished (or stopped at an error)."""
        self.menu("Run", "runmenu:run-all")
        previous = []

        def finished():
            nonlocal previous
            prompts = self.prompts()
            done = (any(re.fullmatch(r"\[\d+\]:", p) for p in prompts) and "[*]:" not in prompts
                    and self.indicator() == "idle" and self.kernel_state() == "idle")
            stable, previous = done and prompts == previous, prompts if done else []
            return prompts if stable else None

        return wait_for(finished, timeout, f"Run All Cells of {self.path} to finish", interval=1)

    def outputs(self) -> list[dict]:
        """Every output in the page: its cell's index, its MIME type, its text, and how many images it shows."""
        return self.js("""
            const cells = [...document.querySelectorAll('.jp-NotebookPanel .jp-Notebook-cell')];
            return cells.flatMap((cell, index) => [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => ({
                cell: index, mime: o.dataset.mimeType || '', text: o.innerText,
                images: [...o.querySelectorAll('img')].filter(i => i.complete && i.naturalWidth > 0).length})));""")

    def scroll_to(self, index: int) -> None:
        self.js("document.querySelectorAll('.jp-NotebookPanel .jp-Notebook-cell')[arguments[0]]"
                ".scrollIntoView({block: 'start'})", index)

    def read_only(self, index: int) -> bool:
        return self.js("const e = document.querySelectorAll('.jp-NotebookPanel .jp-Notebook-cell')[arguments[0]]"
                       ".querySelector('.cm-content'); return e.getAttribute('aria-readonly') === 'true'", index)

    def save(self) -> None:
        self.menu("File", "docmanager:save")
        wait_for(lambda: not self.driver.find_elements(CSS, ".jp-mod-current.jp-mod-dirty, .lm-mod-current.jp-mod-dirty"),
                 60, f"{self.path} to be saved")

    def validate(self, folder: Path, name: str) -> tuple[str, str]:
        """Press nbgrader's Validate in the notebook's toolbar; return the result's class and text, then close it."""
        button = wait_for(lambda: self.driver.find_element(CSS, ".jp-NotebookPanel-toolbar jp-button.validate-button"),
                          30, "the Validate button")
        assert button.text.strip() == "Validate"
        button.click()
        message = wait_for(lambda: self.driver.find_element(CSS, ".jp-Dialog #validation-message"), 420,
                           "nbgrader's validation result")
        title = self.driver.find_element(CSS, ".jp-Dialog .jp-Dialog-header").text
        outcome = next(c for c in message.get_attribute("class").split() if c.startswith("validation-"))
        text = message.text
        screenshot(self.driver, folder, name)
        assert "Validation Results" in title
        self.driver.find_element(CSS, ".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
        wait_for(lambda: not self.driver.find_elements(CSS, ".jp-Dialog"), 30, "the dialog to close")
        return outcome, text

    def shut_down(self) -> None:
        session = self.session()
        if session:
            self.server.api(f"/api/sessions/{session['id']}", method="DELETE")


def filled_in(released: Path, solutions: Path) -> nbformat.NotebookNode:
    """The released notebook as a student completes it: each answer cell holds the solution's code (from the
    notebook ``dlvision build`` writes to solutions/), without nbgrader's solution markers."""
    nb = nbformat.read(released, as_version=4)
    answers = {c.metadata.nbgrader.grade_id: c.source for c in nbformat.read(solutions, as_version=4).cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            cell.source = "\n".join(line for line in answers[cell.metadata.nbgrader.grade_id].splitlines()
                                    if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    return nb


@pytest.fixture(scope="module")
def student(course, tmp_path_factory):
    """The student's JupyterLab, serving the released notebook and, in solved/, a copy of it with the solutions
    filled in."""
    root = tmp_path_factory.mktemp("student")
    work = root / "work"
    (work / "solved").mkdir(parents=True)
    shutil.copy(course / "release" / ASSIGNMENT / NOTEBOOK, work / NOTEBOOK)
    nbformat.write(filled_in(course / "release" / ASSIGNMENT / NOTEBOOK, course / "solutions" / ASSIGNMENT / NOTEBOOK),
                   work / "solved" / NOTEBOOK)
    server = start_server(work, root / "home")
    yield server
    assert server.stop() == [], f"processes left behind by jupyter lab:\n{server.log()[-3000:]}"


def kernel_is_the_environments_python3(lab: Lab) -> None:
    session = lab.session()
    assert session["kernel"]["name"] == "python3"
    [argv0] = {cmd.split("\0")[0] for cmd in lab.server.kernel_command_lines()}
    assert Path(argv0).parent == BIN, f"the kernel runs {argv0}, not this environment's python"


def test_the_released_notebook_shows_the_stubs_errors_and_validate_reports_failures(student, browser, tmp_path):
    lab = Lab(student, browser, NOTEBOOK, "released")
    nb = nbformat.read(student.root / NOTEBOOK, as_version=4)
    hidden = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade")
              and c.cell_type == "code"]
    answers = [i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("solution")]
    # the hidden-test cells are locked (read-only in the editor) and hold no trace of the graders; answers are not
    assert hidden and all(lab.read_only(i) for i in hidden)
    assert answers and not any(lab.read_only(i) for i in answers)
    assert not any("graders/" in nb.cells[i].source or "HIDDEN TESTS" in nb.cells[i].source for i in hidden)
    kernel_is_the_environments_python3(lab)

    prompts = lab.run_all()
    outputs = lab.outputs()
    errors = [o for o in outputs if o["mime"] == "application/vnd.jupyter.stderr"]
    assert errors and "NotImplementedError" in errors[0]["text"], outputs
    first = errors[0]["cell"]
    assert "Visible check" in nb.cells[first].source, "the first error is not in a visible check"
    assert "[ ]:" in prompts, "Run All Cells did not stop at the first error"
    lab.scroll_to(first - 1)
    screenshot(browser, tmp_path, "released-notebook-run-all")

    lab.save()
    outcome, text = lab.validate(tmp_path, "released-notebook-validate")
    assert outcome == "validation-failed", text
    assert "The following cell failed" in text
    lab.shut_down()


def test_the_notebook_with_the_solutions_passes_every_visible_check_shows_the_plots_and_validates(
        student, browser, tmp_path):
    path = f"solved/{NOTEBOOK}"
    lab = Lab(student, browser, path, "solved")
    nb = nbformat.read(student.root / path, as_version=4)
    checks = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "all visible checks passed" in c.source]
    plots = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and re.search(r"\bplt\.|plot_\w+\(", c.source)
             and not c.source.lstrip().startswith("import")]

    prompts = lab.run_all()
    code_cells = sum(c.cell_type == "code" for c in nb.cells)
    assert len(prompts) == code_cells and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts), prompts
    outputs = lab.outputs()
    assert not [o for o in outputs if o["mime"] == "application/vnd.jupyter.stderr"], outputs
    passed = {o["cell"] for o in outputs if "all visible checks passed" in o["text"]}
    assert checks and passed == set(checks)
    shown = {o["cell"] for o in outputs if o["images"]}
    assert plots and shown >= set(plots), f"plots in cells {sorted(shown)}, expected {plots}"

    lab.save()
    # the README's picture: a visible check passing, then the activations plotted from the student's code
    lab.scroll_to(checks[3])
    screenshot(browser, tmp_path, "jupyterlab-student", docs=True)

    saved = nbformat.read(student.root / path, as_version=4)
    assert not [o for c in saved.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    outcome, text = lab.validate(tmp_path, "solved-notebook-validate")
    assert outcome == "validation-success", text
    assert "Success! Your notebook passes all the tests." in text
    lab.shut_down()


# --- formgrader, as a TA uses it --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graded(course):
    """The demo's partly wrong student, submitted and autograded in the course."""
    from dlvision.course import Course
    from dlvision.demo import synthetic_students

    students = synthetic_students(Course(REPO), ASSIGNMENT, course)
    story, notebooks = students[PARTLY_WRONG]
    assert story.startswith("partly wrong")
    folder = course / "submitted" / PARTLY_WRONG / ASSIGNMENT
    folder.mkdir(parents=True)
    for name, nb in notebooks.items():
        nbformat.write(nb, folder / name)
    run([BIN / "dlvision", "autograde", ASSIGNMENT, "--student", PARTLY_WRONG, "--jobs", "1"], course)
    return course


def gradebook(course: Path):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="dlvision")


def grader_code_lines(course: Path) -> set[str]:
    """Lines of the hidden graders' code (not their comments or messages) long enough to be recognised, and not in
    the notebook itself (a visible check may share a line with a grader)."""
    notebook = {line.strip() for cell in nbformat.read(course / "source" / ASSIGNMENT / NOTEBOOK, as_version=4).cells
                for line in cell.source.splitlines()}
    lines = set()
    for path in (course / "graders" / ASSIGNMENT).glob("test_*.py"):
        for line in path.read_text().splitlines():
            line = line.strip()
            if len(line) >= 24 and "(" in line and not line.startswith(("#", '"', "'", "f\"", "f'")) \
                    and line not in notebook:
                lines.add(line)
    return lines


def test_a_ta_sees_the_trusted_reports_and_grades_the_written_answer_in_formgrader(graded, browser, tmp_path):
    course = graded
    with gradebook(course) as gb:
        submission = gb.find_submission(ASSIGNMENT, PARTLY_WRONG)
        score_before, max_score = submission.score, submission.max_score
        notebook = gb.find_submission_notebook(ASSIGNMENT, ASSIGNMENT, PARTLY_WRONG)
        notebook_id = notebook.id
        auto = {g.name: (g.auto_score, g.max_score) for g in notebook.grades if g.auto_score is not None}
        written = gb.find_grade(WRITTEN_ANSWER, ASSIGNMENT, ASSIGNMENT, PARTLY_WRONG)
        assert written.manual_score is None and written.needs_manual_grade
        assert 0 < score_before < max_score
    source = nbformat.read(course / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    hidden = [c.metadata.nbgrader.grade_id for c in source.cells if "### BEGIN HIDDEN TESTS" in c.source]
    assert hidden and set(hidden) <= set(auto)

    server, left_behind = start_server(course, tmp_path / "ta-home"), []
    try:
        # formgrader, then Manual Grading > the assignment > the notebook > the submission, by clicking
        browser.get(server.page("/formgrader"))

        def click(text: str, where: str, goes_to: str) -> None:
            wait_for(lambda: [e for e in browser.find_elements(CSS, where) if e.text.strip() == text],
                     120, f"the link {text!r}")[0].click()
            wait_for(lambda: browser.current_url.split("?")[0].rstrip("/").endswith(goes_to), 120, goes_to)

        click("Manual Grading", "a", "/formgrader/gradebook")
        click(ASSIGNMENT, "#main-table a", f"/gradebook/{ASSIGNMENT}")
        click(ASSIGNMENT, "#main-table a", f"/gradebook/{ASSIGNMENT}/{ASSIGNMENT}")
        click("Submission #1", "#main-table a", f"/formgrader/submissions/{notebook_id}")
        wait_for(lambda: browser.find_element(CSS, f"input.score#{WRITTEN_ANSWER}").is_displayed(), 120,
                 "the grading view")

        page = browser.find_element(CSS, "body").text
        for line in grader_code_lines(course):
            assert line not in page, f"grader code shown to the TA: {line}"
        for grade_id in hidden:
            cell = browser.find_element(CSS, f"input.score#{grade_id}").find_element(
                "xpath", "./ancestor::div[contains(concat(' ', @class, ' '), ' cell ')]")
            code = cell.find_element(CSS, ".input_area").text.strip().splitlines()
            assert all(line.startswith("#") for line in code), f"{grade_id} shows code to the TA: {code}"
            assert any(line.startswith(f"# graders: graders/{ASSIGNMENT}/test_") for line in code), code
            report = cell.find_element(CSS, ".output_stdout").text
            score, points = auto[grade_id]
            assert report.startswith("Hidden tests: ") and f"score {score:g} / {points:g}" in report, report
            assert re.search(r"^\[(PASS|FAIL)\] ", report, re.M), report
            assert ("[FAIL]" in report) == (score < points), report
            # the report fits the page: the TA need not scroll sideways to read a message
            pre = cell.find_element(CSS, ".output_stdout pre")
            assert browser.execute_script("return arguments[0].scrollWidth <= arguments[0].clientWidth + 1", pre), \
                f"{grade_id}'s report is wider than its box"

        failed = next(g for g in hidden if auto[g][0] < auto[g][1])
        browser.execute_script("arguments[0].scrollIntoView({block: 'start'}); window.scrollBy(0, -70)",
                               browser.find_element(CSS, f"input.score#{failed}").find_element(
                                   "xpath", "./ancestor::div[contains(concat(' ', @class, ' '), ' cell ')]"))
        screenshot(browser, tmp_path, "formgrader-ta", docs=True)

        # the written answer: a score and a comment; formgrader saves each on change
        box = browser.find_element(CSS, f"input.score#{WRITTEN_ANSWER}")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        box.click()
        box.send_keys("2")
        browser.execute_script("arguments[0].blur()", box)
        comment = browser.find_element(CSS, f"textarea#{WRITTEN_ANSWER}-comment")
        comment.click()
        comment.send_keys("Right: the derivative is at most 1/4 and vanishes where the sigmoid saturates.")
        browser.execute_script("arguments[0].blur()", comment)

        def saved():
            with gradebook(course) as gb:
                grade = gb.find_grade(WRITTEN_ANSWER, ASSIGNMENT, ASSIGNMENT, PARTLY_WRONG)
                found = gb.find_comment(WRITTEN_ANSWER, ASSIGNMENT, ASSIGNMENT, PARTLY_WRONG)
                return grade.manual_score == 2 and bool(found.manual_comment)

        wait_for(saved, 60, "the hand grade to be saved in the gradebook", interval=0.5)
        screenshot(browser, tmp_path, "formgrader-written-answer-graded")

        browser.refresh()
        wait_for(lambda: browser.find_element(CSS, f"input.score#{WRITTEN_ANSWER}").get_attribute("value") == "2",
                 120, "the saved score after a reload")
    finally:
        left_behind = server.stop()
    assert left_behind == [], f"processes left behind by jupyter lab:\n{server.log()[-3000:]}"

    with gradebook(course) as gb:
        submission = gb.find_submission(ASSIGNMENT, PARTLY_WRONG)
        assert submission.score == score_before + 2
        assert not gb.find_grade(WRITTEN_ANSWER, ASSIGNMENT, ASSIGNMENT, PARTLY_WRONG).needs_manual_grade
    table = tmp_path / "grades.csv"
    run([BIN / "dlvision", "grades", "--csv", table], course)
    [row] = [r for r in csv.DictReader(table.open()) if r["student"] == PARTLY_WRONG and r["assignment"] == ASSIGNMENT]
    assert float(row["score"]) == score_before + 2
