import pytest

from dlvision.grading.report import format_report, title_of
from dlvision.grading.scoring import TestResult, cell_score

PASS_2 = TestResult("softmax matches torch", 2, "passed")
FAIL_1 = TestResult("softmax is stable", 1, "failed", "the result: 3 entries are inf or nan.\nHint: shift by the max.")
SKIP_1 = TestResult("runs on CUDA", 1, "skipped", "no CUDA device at grading time")


def test_score_is_the_weighted_fraction_of_passed_tests():
    assert cell_score([PASS_2, FAIL_1], cell_points=6) == 4.0


def test_all_passed_scores_the_cell_points_and_none_passed_scores_zero():
    assert cell_score([PASS_2], 5) == 5.0
    assert cell_score([FAIL_1], 5) == 0.0


def test_skipped_tests_are_left_out_under_exclude():
    assert cell_score([PASS_2, SKIP_1], 3, skipped="exclude") == 3.0


def test_skipped_tests_count_as_failed_under_forfeit():
    assert cell_score([PASS_2, SKIP_1], 3, skipped="forfeit") == 2.0


def test_a_cell_whose_tests_all_skipped_scores_zero():
    assert cell_score([SKIP_1], 3) == 0.0


def test_an_unknown_skip_policy_is_refused():
    with pytest.raises(ValueError, match="exclude"):
        cell_score([PASS_2], 1, skipped="award")


def test_report_summarises_then_lists_each_test_with_failure_messages_indented():
    text = format_report([PASS_2, FAIL_1, SKIP_1], 4.0, 6)
    lines = text.splitlines()
    assert lines[0] == "Hidden tests: 1 of 2 passed, 1 skipped - score 4 / 6"
    assert "[PASS] softmax matches torch (2 pt)" in lines
    assert "[FAIL] softmax is stable (1 pt)" in lines
    assert "       the result: 3 entries are inf or nan." in lines
    assert "       Hint: shift by the max." in lines
    assert "[SKIP] runs on CUDA (1 pt)" in lines


def test_title_prefers_the_docstring_and_falls_back_to_the_name_in_words():
    assert title_of("test_softmax_is_stable", None) == "softmax is stable"
    assert title_of("test_x", "Softmax survives logits of 1e4.\n\nMore.") == "Softmax survives logits of 1e4."
