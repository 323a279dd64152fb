"""From test outcomes to a grade cell's score."""
from __future__ import annotations

from dataclasses import dataclass

#: How skipped tests (``gpu`` tests where grading has no CUDA device) count; see TrustedExecute.skipped_tests.
SKIPPED_POLICIES = ("exclude", "forfeit")


@dataclass(frozen=True)
class TestResult:
    """One grader test's outcome: ``passed``, ``failed``, ``skipped`` or ``error`` (the grader itself broke)."""

    __test__ = False  # not a pytest test class, despite its name

    title: str
    points: float
    outcome: str
    message: str = ""
    note: str = ""    # e.g. "on the stand-in CUDA device"


def cell_score(results: list[TestResult], cell_points: float, skipped: str = "exclude") -> float:
    """The cell's points times the weighted fraction of its tests that passed.

    ``skipped="exclude"`` leaves skipped tests out of the fraction (nobody loses points because grading had
    no GPU); ``"forfeit"`` counts them as failed. A cell whose tests all skipped under "exclude" scores 0.
    """
    if skipped not in SKIPPED_POLICIES:
        raise ValueError(f"skipped must be one of {SKIPPED_POLICIES}, not {skipped!r}")
    counted = [r for r in results if r.outcome != "skipped" or skipped == "forfeit"]
    total = sum(r.points for r in counted)
    if total <= 0:
        return 0.0
    earned = sum(r.points for r in counted if r.outcome == "passed")
    return round(cell_points * earned / total, 4)
