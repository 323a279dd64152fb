import pytest
import torch

from dlvision.checks import expect_close


def test_equal_tensors_pass():
    x = torch.randn(4, 5, dtype=torch.float64)
    expect_close(x.clone(), x)


@pytest.mark.parametrize("got, says", [
    ([1.0, 2.0], "expected a torch.Tensor, got list"),
    (torch.zeros(2, 3), "expected shape (3, 2), got (2, 3)"),
    (torch.zeros(3, 2, dtype=torch.float64), "expected dtype torch.float32, got torch.float64"),
])
def test_wrong_type_shape_or_dtype_is_named(got, says):
    with pytest.raises(AssertionError, match=says.replace("(", r"\(").replace(")", r"\)")):
        expect_close(got, torch.zeros(3, 2))


def test_the_largest_error_is_located_and_the_hint_given():
    expected = torch.zeros(3, 4, dtype=torch.float64)
    got = expected.clone()
    got[2, 1] = 0.5
    with pytest.raises(AssertionError) as error:
        expect_close(got, expected, name="softmax(x)", hint="Subtract the max.")
    message = str(error.value)
    assert message.startswith("softmax(x): 1 of 12 entries are off")
    assert "at (2, 1): expected 0, got 0.5" in message
    assert message.endswith("Hint: Subtract the max.")


def test_nan_where_a_finite_value_is_expected_is_reported_as_such():
    with pytest.raises(AssertionError, match="inf or nan where finite values were expected"):
        expect_close(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]))


def test_matching_infinities_pass_and_a_missing_one_fails():
    expected = torch.tensor([float("-inf"), 0.0])
    expect_close(expected.clone(), expected)
    with pytest.raises(AssertionError, match="expected -inf"):
        expect_close(torch.tensor([-1e30, 0.0]), expected)


def test_integer_tensors_compare_exactly():
    with pytest.raises(AssertionError, match="1 of 3 entries differ"):
        expect_close(torch.tensor([1, 2, 4]), torch.tensor([1, 2, 3]))


def test_float32_tolerance_is_relative_1e_5_by_default():
    expected = torch.tensor([1000.0])
    expect_close(expected * (1 + 5e-6), expected)
    with pytest.raises(AssertionError):
        expect_close(expected * (1 + 5e-5), expected)
