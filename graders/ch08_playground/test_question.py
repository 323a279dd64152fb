"""Hidden test for the multiple-choice question of Chapter 8 (section 6)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_why_two_hidden_units_fail_on_the_spirals(student):
    """the answer to "Why does a network with 2 hidden units fail on the spirals?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "B", (
        f'"{answer.strip().upper()}" is not right. Look again at the 2-unit network of section 5.1 and at the lines '
        "drawn on it, and re-read what one hidden unit computes (section 2).")
