"""Hidden test for the multiple-choice question of Chapter 1 (section 5)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_main_bottleneck_of_the_classical_pipeline(student):
    """the answer to "What was the main bottleneck of the classical feature + classifier pipeline?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "B", (
        f'"{answer.strip().upper()}" is not right. Look again at the decision boundaries of section 4: the same '
        "linear classifier fails on the raw coordinates and succeeds on features that someone chose by hand. "
        "Which part of the pipeline did that choice belong to, and who would make it for millions of photographs?")
