"""Hidden test for the multiple-choice question of Chapter 4 (section 7)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_key_insight_of_convolutional_layers(student):
    """the answer to "What is the key insight of convolutional layers over fully connected layers?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        'answer should be one of the strings "A", "B", "C" or "D".')
    assert answer.strip().upper() == "B", (
        f'"{answer.strip().upper()}" is not right. Re-read the introduction: what do local connectivity and weight '
        "sharing give a convolutional layer that a fully connected one lacks, and what did section 3 count?")
