"""The demo: a scratch course, a handful of synthetic students, autograde, feedback and the gradebook.

The synthetic submissions are derived from the course itself (the source notebook, its release stub and its
mutants), so the demo holds no solutions of its own.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import nbformat

from dlvision import api
from dlvision.course import Course, read_notebook
from dlvision.mutants import read_mutants

DEMO_ASSIGNMENT = "ch02_neurons"

CHEAT = '''# Try every trick: make checks always pass, read the hidden graders, overwrite the gradebook.
import torch, torch.testing, dlvision.checks
torch.testing.assert_close = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
dlvision.checks.expect_close = lambda *args, **kwargs: None
for path in ["../../../graders", "ROOT/graders", "ROOT/source", "../../../gradebook.db", "ROOT/gradebook.db"]:
    try:
        print(path, "->", __import__("os").listdir(path) if not path.endswith(".db") else open(path, "w"))
    except OSError as error:
        print(path, "->", type(error).__name__)
'''


def synthetic_students(course: Course, assignment: str, built: Path) -> dict[str, tuple[str, dict]]:
    """``student -> (what they did, {notebook name: notebook})``, from the source, the stub and the mutants."""
    sources = {p.name: read_notebook(p) for p in course.source_notebooks(assignment)}
    stubs = {name: read_notebook(built / "release" / assignment / name) for name in sources}
    first = next(iter(sources))
    mutants = read_mutants(course.root / "graders" / assignment / "mutants")[:2]
    partly_wrong = sources[first]
    for mutant in mutants:
        partly_wrong = mutant.apply(partly_wrong)
    looping = nbformat.from_dict(sources[first])
    first_solution = next(c for c in looping.cells if c.metadata.get("nbgrader", {}).get("solution")
                          and c.cell_type == "code")
    first_solution.source = "while True:  # a loop that never ends\n    pass\n" + first_solution.source
    cheating = nbformat.from_dict(stubs[first])
    cheating.cells.insert(1, nbformat.v4.new_code_cell(CHEAT.replace("ROOT", str(built))))
    return {
        "ada": ("full solution", sources),
        "ben": ("partly wrong: " + "; ".join(m.description for m in mutants), {**sources, first: partly_wrong}),
        "cleo": ("blank: the released stub", stubs),
        "dev": (f"cell '{first_solution.metadata.nbgrader.grade_id}' loops forever", {**sources, first: looping}),
        "eve": ("cheats: patches torch.testing, torch.allclose and dlvision, snoops on graders/ and the gradebook",
                {**stubs, first: cheating}),
    }


def prepare(course: Course, root: Path | None = None) -> tuple[Course, dict[str, str]]:
    """Build the demo course in ``root`` (a new temporary folder by default) and submit the synthetic students.

    Returns the demo course and ``student -> what they did``.
    """
    root = Path(root or tempfile.mkdtemp(prefix="dlvision-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(course.root / "nbgrader_config.py", root)
    for part in ("source", "graders"):
        shutil.copytree(course.root / part / DEMO_ASSIGNMENT, root / part / DEMO_ASSIGNMENT, dirs_exist_ok=True)
    demo = Course(root, course.overrides)
    api.build(demo, [DEMO_ASSIGNMENT])
    stories = {}
    for student, (story, notebooks) in synthetic_students(course, DEMO_ASSIGNMENT, root).items():
        folder = root / "submitted" / student / DEMO_ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        for name, nb in notebooks.items():
            nbformat.write(nb, folder / name)
        stories[student] = story
    return demo, stories
