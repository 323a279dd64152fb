"""Hidden test for the multiple-choice question of Chapter 9, section 5."""
from dlvision.grading import points


@points(1)
def test_answer_names_convolutional_networks(student):
    """the basis of most modern detection and segmentation systems: CNN backbones with task heads (B)"""
    answer = student.value("answer")
    assert isinstance(answer, str) and answer.strip().upper() == "B", (
        "Not quite. Detection and segmentation systems (Faster R-CNN, YOLO, Mask R-CNN, U-Net...) are built on "
        "convolutional backbones such as ResNet, with heads that turn the features into boxes or per-pixel "
        "classes. Set answer to the letter of that option, as a string (e.g. answer = \"A\").")
