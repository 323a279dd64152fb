"""What a student reads: safe words for their own errors, no grader code, bounded sizes."""
import nbformat

from dlvision.grading.report import MAX_REPORT_CHARS, Redactor, describe_error, format_report
from dlvision.grading.scoring import TestResult
from dlvision.grading.submission import extract


def graded():
    cells = [nbformat.v4.new_code_cell("import torch\ndef square(x):\n    y = x[100]\n    return y * y")]
    cells[0].metadata["nbgrader"] = {"grade_id": "square", "solution": True}
    return extract(cells, {"square": ["square"]})


def error(kind, message, line=3):
    return {"type": kind, "message": message, "frames": [("<cell 'square'>", line)]}


def test_a_known_error_is_shown_with_the_students_own_line():
    text = describe_error(error("builtins.IndexError", "index 100 is out of bounds for dimension 0 with size 3"),
                          graded())
    assert text == ("IndexError: index 100 is out of bounds for dimension 0 with size 3\n"
                    "  at cell 'square', line 3: y = x[100]")


def test_a_message_that_could_carry_anything_is_not_shown():
    text = describe_error(error("builtins.ValueError", "LEAKED [0.123, 0.456] def gradient_of_square"), graded())
    assert "LEAKED" not in text and "gradient_of_square" not in text
    assert text.startswith("ValueError (its message is not shown here")


def test_identifiers_in_a_message_must_come_from_the_students_code():
    assert "'y'" in describe_error(error("builtins.NameError", "name 'y' is not defined"), graded())
    assert "gradient_of_square" not in describe_error(
        error("builtins.NameError", "name 'gradient_of_square' is not defined"), graded())


def test_an_exception_class_of_the_students_own_is_not_named():
    text = describe_error(error("submission.MySecretEncodedClassName", ""), graded())
    assert "MySecret" not in text and "a class defined in your code" in text


def test_a_frame_outside_the_students_code_is_not_quoted():
    text = describe_error({"type": "builtins.IndexError", "message": "list index out of range",
                           "frames": [("/usr/lib/secret.py", 1), ("<dlvision grader scenario>", 5)]}, graded())
    assert text == "IndexError: list index out of range"


def test_a_message_quoting_the_grader_code_is_removed_but_its_hints_stay(tmp_path):
    grader = tmp_path / "test_x.py"
    grader.write_text('def scenario(x):\n    return square(x) * torch.tensor(2.0) + hidden_offset\n\n'
                      'def test(student):\n    assert False, "Multiply x by itself, do not add anything."\n')
    redact = Redactor([grader])
    assert redact("Multiply x by itself, do not add anything.") == "Multiply x by itself, do not add anything."
    assert "removed" in redact("got: return square(x) * torch.tensor(2.0) + hidden_offset")


def test_a_report_is_capped():
    results = [TestResult(f"test {i}", 1, "failed", "x" * 1000) for i in range(100)]
    assert len(format_report(results, 0, 100)) < MAX_REPORT_CHARS + 200


def test_a_quote_of_the_students_own_line_stays_even_if_a_grader_has_the_same_line(tmp_path):
    grader = tmp_path / "test_x.py"
    grader.write_text("def reference(magnitude, weights):\n    votes = magnitude[..., None] * weights.clamp(min=0)\n")
    own = "def hog(m, w):\n    votes = magnitude[..., None] * weights.clamp(min=0)\n    return votes"
    message = "cell 'hog', line 2: votes = magnitude[..., None] * weights.clamp(min=0)"
    assert Redactor([grader], known=own)(message) == message
    assert "removed" in Redactor([grader])(message)
