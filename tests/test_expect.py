import pytest

from dlvision.grading import expect_implemented_without
from dlvision.grading.student import Student, StudentError

CELLS = [
    "import torch\nimport torch.nn.functional as F",
    "def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))",
    "def relu(x):\n    return F.relu(x)",
    "def gelu(x):\n    from torch.nn.functional import gelu as g\n    return g(x)",
    "def sigmoid_old(x):\n    return torch.sigmoid(x)",
    "this cell does not parse (",
]


def student() -> Student:
    return Student(execute=None, code_cells=CELLS)


def test_an_implementation_with_tensor_operations_passes():
    expect_implemented_without(student(), "sigmoid", ["torch.sigmoid", "torch.nn.functional", "F."])


@pytest.mark.parametrize("name, found", [("relu", "F."), ("gelu", "torch.nn.functional"),
                                         ("sigmoid_old", "torch.sigmoid")])
def test_a_forbidden_call_is_named(name, found):
    with pytest.raises(AssertionError, match=f"{name} uses {found}"):
        expect_implemented_without(student(), name, ["torch.sigmoid", "torch.nn.functional", "F."])


def test_the_last_definition_of_a_name_is_the_one_checked():
    cells = ["def f(x):\n    return torch.sigmoid(x)", "def f(x):\n    return x"]
    expect_implemented_without(Student(execute=None, code_cells=cells), "f", ["torch.sigmoid"])


def test_a_missing_function_is_a_student_error():
    with pytest.raises(StudentError, match="no function or class named 'tanh'"):
        student().source_of("tanh")
