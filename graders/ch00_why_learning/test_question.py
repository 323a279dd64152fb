"""Hidden test for the multiple-choice question of Chapter 0 (section 4)."""
from dlvision.grading import points

CHOICES = ("A", "B", "C", "D")


@points(1)
def test_key_advantage_of_learned_features(student):
    """the answer to "What is the key advantage of learned features over hand-crafted features?" is right"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() in CHOICES, (
        f'answer should be one of the strings "A", "B", "C" or "D", got {answer!r}.')
    assert answer.strip().upper() == "D", (
        f'"{answer.strip().upper()}" is not right. Look again at the experiment: the network needed labelled '
        "examples to train, its accuracy depends on what it saw, and it took longer to train than HOG took to "
        "compute. What did it have that your hand-designed Sobel and HOG features did not? Re-read the "
        "chapter's introduction and the summary of section 3.")
