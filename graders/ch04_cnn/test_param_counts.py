"""Hidden tests for conv_params and dense_params (Chapter 4, section 3).

Reference: PyTorch's own layers, counted here on the trusted side as sum(p.numel() for p in layer.parameters()),
built on the "meta" device (shapes only, no memory), with and without biases, and the chapter's example. The
counts are exact integers: the answer must be a Python int equal to the reference.
"""
import torch

from dlvision.grading import points

#: (in_ch, out_ch, k): the chapter's example first, then one channel, one filter, a 1x1 kernel, large layers.
CONV_CASES = [(3, 64, 3), (1, 8, 3), (8, 16, 3), (1, 1, 1), (7, 1, 5), (64, 128, 7), (512, 512, 3), (3, 96, 11)]
#: (in_features, out_features): the chapter's example first.
DENSE_CASES = [(224 * 224 * 3, 1000), (256, 10), (1, 1), (10, 1), (1, 7), (4096, 4096), (784, 300)]


def counts(name, cases):
    """name(*args, **kwargs) for each case: what the student's function returns."""
    function = globals()[name]
    return [function(*args, **kwargs) for args, kwargs in cases]


def torch_count(layer):
    return sum(p.numel() for p in layer.parameters())


def check(student, name, cases, layer, hint):
    calls = [(args, kwargs) for args in cases for kwargs in ({}, {"bias": True}, {"bias": False})]
    for (args, kwargs), got in zip(calls, student.run(counts, name, calls)):
        expected = torch_count(layer(*args, bias=kwargs.get("bias", True), device="meta"))
        call = f"{name}({', '.join(map(str, args))}{''.join(f', {k}={v}' for k, v in kwargs.items())})"
        assert type(got) is int, (f"{call} should return a Python int ({expected}), got a {type(got).__name__}"
                                  + (f" ({got})" if isinstance(got, float) else "")
                                  + ". Counts are whole numbers: use only *, + and ints (no /, no tensors).")
        assert got == expected, f"{call} should be {expected:,}, got {got:,}. {hint}"


@points(1)
def test_conv_params_counts_like_torch_conv2d(student):
    """conv_params(in_ch, out_ch, k, bias) is the number of parameters of nn.Conv2d(in_ch, out_ch, k, bias=bias)"""
    check(student, "conv_params", CONV_CASES, torch.nn.Conv2d,
          "A convolution has out_ch filters of in_ch * k * k weights each, plus one bias per filter when bias is "
          "true (the default): the chapter's 64 filters of 3 x 3 x 3 have 1,728 weights and 64 biases.")


@points(1)
def test_dense_params_counts_like_torch_linear(student):
    """dense_params(in_features, out_features, bias) is the number of parameters of nn.Linear(...)"""
    check(student, "dense_params", DENSE_CASES, torch.nn.Linear,
          "A dense layer has a weight for every (input, unit) pair, in_features * out_features, plus one bias per "
          "unit when bias is true (the default).")
