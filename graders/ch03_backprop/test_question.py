"""Hidden test for the multiple-choice question of Chapter 3 (section 8)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_what_backpropagation_computes(student):
    """the answer to "What does backpropagation compute?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "B", (
        f'"{answer.strip().upper()}" is not right. Backpropagation itself updates nothing and predicts nothing: '
        "re-read section 2 and look at what your linear_backward and TwoLayerNet.loss return.")
