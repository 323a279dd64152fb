"""The direct path (a warm grading kernel, no nbgrader; what selftest uses for mutants and hollow stubs) reaches
the same verdict as the production path (nbgrader autograde with both sandboxed kernels) on every named mutant and
hollow stub of an assignment.

CI proves it on the toy assignment. To prove it on course assignments (several minutes each: every mutant is
graded the production way), name them: ``DLVISION_DIRECT_ASSIGNMENTS=ch02_neurons pytest tests/test_direct.py``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlvision import selftest
from dlvision.course import Course
from tests.conftest import REPO

pytestmark = pytest.mark.slow


def verdicts_on_both_paths(course: Course, assignment: str, scratch: Path) -> list[tuple[str, dict, dict]]:
    """``(variant, production scores, direct scores)`` of each named mutant and hollow stub, over its targets."""
    built = selftest._built_copy(course, assignment, scratch / "built")
    overrides = [*course.overrides, "--TrustedExecute.gpu_stand_in=True"]
    compared = []
    try:
        for variant in selftest._variants(course, assignment, built):
            if variant.kind not in selftest.DIRECT_KINDS:
                continue
            _, production, _, error = selftest._grade_variant(str(built), str(scratch / variant.name), assignment,
                                                              variant.name, variant.notebooks, overrides)
            assert production is not None, f"{variant.name}: production path failed: {error}"
            _, direct, _, error = selftest._grade_mutant(str(built), assignment, variant.notebooks,
                                                        list(variant.targets))
            assert direct is not None, f"{variant.name}: direct path failed: {error}"
            compared.append((variant.name, {c: production[c] for c in variant.targets},
                             {c: direct[c] for c in variant.targets}))
    finally:
        for grader in selftest._DIRECT.values():
            grader.close()
        selftest._DIRECT.clear()
    return compared


def test_direct_path_agrees_with_production_on_the_toy_mutants(toy_course, tmp_path):
    compared = verdicts_on_both_paths(Course(toy_course), "toy", tmp_path)
    assert len(compared) == 3 + 2  # three named mutants, the stub returning zeros and returning its input
    for name, production, direct in compared:
        assert production == direct, f"{name}: production {production} but direct {direct}"


@pytest.mark.timeout(3 * 3600)
@pytest.mark.parametrize("assignment", [a for a in os.environ.get("DLVISION_DIRECT_ASSIGNMENTS", "").split(",") if a])
def test_direct_path_agrees_with_production_on_course_mutants(assignment, tmp_path):
    compared = verdicts_on_both_paths(Course(REPO), assignment, tmp_path)
    assert compared, f"{assignment} has no named mutants"
    disagree = [(n, p, d) for n, p, d in compared if p != d]
    print(f"{assignment}: {len(compared)} mutants, {len(disagree)} disagreements")
    assert not disagree, disagree
