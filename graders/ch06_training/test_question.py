"""Hidden test for the multiple-choice question of Chapter 6 (section 7)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_why_augmentation_is_often_the_most_effective_regularizer(student):
    """the answer to "Why is data augmentation often the most effective regularizer?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "B", (
        f'"{answer.strip().upper()}" is not right. Augmentation neither shrinks the network, nor normalises '
        "layers, nor changes the learning rate: re-read section 3 and look at what your experiment of section 6.2 "
        "changed, and what it did not.")
