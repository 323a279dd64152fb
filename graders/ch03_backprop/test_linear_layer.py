"""Hidden tests for linear_forward and linear_backward (Chapter 3, section 2.1).

The forward reference is x @ W + b in float64; the backward reference is autograd through it in float64
(relative error below 1e-7, the default float64 tolerance), with a random upstream gradient.
"""
import torch

from dlvision.grading import (StudentError, expect_close, expect_implemented_without, expect_keeps_device, points,
                              requires)

#: (N, D, M): a batch of one, one feature, one output, square W (where a transpose still has the right shape).
SHAPES = [(1, 1, 1), (1, 4, 3), (2, 3, 3), (5, 1, 4), (7, 6, 1), (16, 9, 5), (33, 17, 10)]

#: Off limits (the notebook's introduction): autograd in any form, torch.nn (torch.nn.functional included).
FORBIDDEN = ["torch.nn", "torch.autograd", "torch.func", "torch.Tensor.backward", "torch.Tensor.requires_grad_"]
FORBIDDEN_ATTRIBUTES = {"backward", "requires_grad", "requires_grad_", "retain_grad"}

DEVICE_HINT = ("The layer must work on any device: out, dx, dW and db stay on the device of x, W and b. Compute "
               "them from the tensors you are given (matrix products, sums); a tensor made with torch.zeros(...) "
               "without device= lives on the CPU, and the notebook's global `device` is not the device of x.")
HINTS = {
    "dx": "dx = dout @ W.T: shape (N, M) @ (M, D) = (N, D).",
    "dW": "dW = x.T @ dout: shape (D, N) @ (N, M) = (D, M), the shape of W.",
    "db": "db = dout.sum(dim=0): the bias is added to every row, so its gradient sums over the batch (dim 0).",
}


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_and_backward(cases):
    """For each (x, W, b, dout): linear_forward, then linear_backward on its cache; the results as they came, or
    what linear_forward returned, in words, if it is not a pair."""
    import torch

    results = []
    for x, W, b, dout in cases:
        returned = linear_forward(x.clone(), W.clone(), b.clone())
        if not (isinstance(returned, (tuple, list)) and len(returned) == 2):
            results.append({"returned": [list(returned.shape)] if isinstance(returned, torch.Tensor) else
                            len(returned) if isinstance(returned, (tuple, list)) else None})
            continue
        out, cache = returned
        results.append({"out": out, "grads": linear_backward(dout.clone(), cache)})
    return results


def linear_forward_then_backward(x, W, b, dout, device="cpu"):
    """linear_forward, then linear_backward on its cache, for expect_keeps_device (which moves the tensors)."""
    out, cache = linear_forward(x, W, b)
    return {"out": out, "grads": linear_backward(dout, cache)}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_cases(seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, d, m in SHAPES:
        x, W, b, dout = (torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
                         for shape in ((n, d), (d, m), (m,), (n, m)))
        cases.append((x, W, b, dout))
    return cases


def describe(x, W):
    return f"x of shape {tuple(x.shape)}, W of shape {tuple(W.shape)}, {str(x.dtype).removeprefix('torch.')}"


def reference_gradients(x, W, b, dout):
    leaves = [t.detach().double().clone().requires_grad_(True) for t in (x, W, b)]
    ((leaves[0] @ leaves[1] + leaves[2]) * dout.double()).sum().backward()
    return {name: leaf.grad.to(x.dtype) for name, leaf in zip(("dx", "dW", "db"), leaves)}


def gradient_hint(name, got, expected):
    if isinstance(got, torch.Tensor) and got.dim() == 2 and got.shape == expected.T.shape and got.shape != expected.shape:
        return f"{name} has the transposed shape {tuple(got.shape)}. " + HINTS[name]
    if (name == "dW" and isinstance(got, torch.Tensor) and got.shape == expected.shape == expected.T.shape
            and torch.allclose(got.double(), expected.double().T, rtol=1e-7)):
        return "dW holds the transpose of the right values. " + HINTS[name]
    return HINTS[name]


def results(student, cases):
    """The student's {"out", "grads"} for each case, after checking that linear_forward returned a pair."""
    got = student.run(forward_and_backward, cases)
    for (x, W, _, _), result in zip(cases, got):
        if "returned" in result:
            returned = result["returned"]
            found = (f"a tensor of shape {tuple(v for v in returned[0] if type(v) is int)}"  # plain ints only
                     if isinstance(returned, list) and isinstance(returned[0], list) else
                     f"{returned} values" if type(returned) is int else "something else")
            raise AssertionError(f"linear_forward should return a pair (out, cache) for {describe(x, W)}, got "
                                 f"{found}. The cache is what linear_backward needs later.")
    return got


def runtime_call(student, inputs, weight, bias, dout):
    """Arguments for recording the torch functions linear_backward runs: its own cache, if that can travel."""
    try:
        _, cache = student.linear_forward(inputs, weight, bias)
    except (StudentError, TypeError, ValueError):
        return None  # a cache that is not plain data cannot be sent back: the static check alone then
    return (dout, cache), {}


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_linear_forward_is_x_W_plus_b(student):
    """linear_forward(x, W, b) returns x @ W + b (W of shape (D, M)), float64 and float32, N = 1 included"""
    for dtype in (torch.float64, torch.float32):
        cases = random_cases(1, dtype)
        for (x, W, b, _), got in zip(cases, results(student, cases)):
            expect_close(got["out"], (x.double() @ W.double() + b.double()).to(dtype),
                         name=f"linear_forward, {describe(x, W)}",
                         hint="out = x @ W + b, with W of shape (D, M): no transpose in this API.")
    # The docstring's "same dtype and device", on a GPU or the stand-in: it can only fail this test.
    x, W, b, _ = random_cases(1, torch.float32)[5]
    expect_keeps_device(student, "linear_forward", x, W, b, hint=DEVICE_HINT)


@points(2)
def test_linear_backward_matches_autograd(student):
    """linear_backward returns dx, dW and db equal to autograd's, in float64, on many shapes (N = 1 included)"""
    for seed in (2, 3):
        cases = random_cases(seed)
        for (x, W, b, dout), got in zip(cases, results(student, cases)):
            grads = got["grads"]
            assert isinstance(grads, (tuple, list)) and len(grads) == 3, (
                f"linear_backward should return three gradients (dx, dW, db) for {describe(x, W)}, got "
                + (f"{len(grads)} values." if isinstance(grads, (tuple, list)) else f"a {type(grads).__name__}."))
            expected = reference_gradients(x, W, b, dout)
            for name, value in zip(("dx", "dW", "db"), grads):
                expect_close(value, expected[name], name=f"{name} for {describe(x, W)}",
                             hint=gradient_hint(name, value, expected[name]))
    # The gradients stay where the layer's tensors are (a network on a GPU trains with them), on a GPU or the
    # stand-in: it can only fail this test.
    x, W, b, dout = random_cases(2, torch.float32)[5]
    expect_keeps_device(student, linear_forward_then_backward, x, W, b, dout, hint=DEVICE_HINT)


@points(1)
@requires("test_linear_forward_is_x_W_plus_b", "test_linear_backward_matches_autograd")
def test_linear_layer_is_implemented_by_hand(student):
    """linear_forward and linear_backward use no autograd and nothing from torch.nn"""
    x, W, b, dout = random_cases(4)[3]
    calls = {"linear_forward": ((x, W, b), {}), "linear_backward": runtime_call(student, x, W, b, dout)}
    for name, calling in calls.items():
        try:
            expect_implemented_without(student, name, FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES, calling=calling)
        except AssertionError as error:
            raise AssertionError(f"{error} Compute the output and the gradients with matrix products yourself "
                                 "(x @ W + b, dout @ W.T, x.T @ dout, dout.sum(dim=0)), without autograd or "
                                 "torch.nn.") from None
