"""Hidden test for the multiple-choice question of Chapter 5 (section 8)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_what_resnets_skip_connections_solve(student):
    """the answer to "What problem do ResNet's skip connections solve?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "C", (
        f'"{answer.strip().upper()}" is not right. Look again at section 6: how do the gradient norms of the plain '
        "and the residual network differ along the depth, and which of the two networks trains?")
