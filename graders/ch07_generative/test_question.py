"""Hidden test for the multiple-choice question of Chapter 7 (section 6)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_what_makes_gans_different_from_autoencoders(student):
    """the answer to "What makes GANs different from autoencoders?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "B", (
        f'"{answer.strip().upper()}" is not right. Look at what each model is trained to do: which one has a '
        "bottleneck and a pixel-wise loss, and which one learns from a second network instead (sections 1 and 3).")
