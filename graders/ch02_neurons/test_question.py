"""Hidden test for the multiple-choice question of Chapter 2 (section 5)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_why_activation_functions_are_essential(student):
    """the answer to "Why are activation functions essential in neural networks?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "C", (
        f'"{answer.strip().upper()}" is not right. Re-read section 4, "Why nonlinearity?", and look again at the '
        "experiment: what does the network without activations collapse into, and what does its decision "
        "boundary look like?")
