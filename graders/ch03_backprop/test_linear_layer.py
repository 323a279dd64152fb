"""Hidden tests for linear_forward and linear_backward (Chapter 3, section 2.1).

The forward reference is x @ W + b in float64; the backward reference is autograd through it in float64
(relative error below 1e-7, the default float64 tolerance), with a random upstream gradient.
"""
import ast

import torch

from dlvision.grading import StudentError, expect_close, expect_implemented_without, points

#: (N, D, M): a batch of one, one feature, one output, square W (where a transpose still has the right shape).
SHAPES = [(1, 1, 1), (1, 4, 3), (2, 3, 3), (5, 1, 4), (7, 6, 1), (16, 9, 5), (33, 17, 10)]

FORBIDDEN_DOTTED = ["torch.nn", "F.", "torch.autograd", "torch.func", "functorch"]
FORBIDDEN_ATTRIBUTES = {"backward", "grad", "requires_grad_"}

HINTS = {
    "dx": "dx = dout @ W.T: shape (N, M) @ (M, D) = (N, D).",
    "dW": "dW = x.T @ dout: shape (D, N) @ (N, M) = (D, M), the shape of W.",
    "db": "db = dout.sum(dim=0): the bias is added to every row, so its gradient sums over the batch (dim 0).",
}


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_and_backward(cases):
    """For each (x, W, b, dout): linear_forward, then linear_backward on its cache."""
    results = []
    for x, W, b, dout in cases:
        out, cache = linear_forward(x.clone(), W.clone(), b.clone())
        grads = linear_backward(dout.clone(), cache)
        results.append({"out": out, "grads": list(grads)})
    return results


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


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_linear_forward_is_x_W_plus_b(student):
    """linear_forward(x, W, b) returns x @ W + b (W of shape (D, M)), float64 and float32, N = 1 included"""
    for dtype in (torch.float64, torch.float32):
        cases = random_cases(1, dtype)
        for (x, W, b, _), got in zip(cases, student.run(forward_and_backward, cases)):
            expect_close(got["out"], (x.double() @ W.double() + b.double()).to(dtype),
                         name=f"linear_forward, {describe(x, W)}",
                         hint="out = x @ W + b, with W of shape (D, M): no transpose in this API.")


@points(3)
def test_linear_backward_matches_autograd(student):
    """linear_backward returns dx, dW and db equal to autograd's, in float64, on many shapes (N = 1 included)"""
    for seed in (2, 3):
        cases = random_cases(seed)
        for (x, W, b, dout), got in zip(cases, student.run(forward_and_backward, cases)):
            assert len(got["grads"]) == 3, (f"linear_backward should return three gradients (dx, dW, db), "
                                            f"got {len(got['grads'])} for {describe(x, W)}.")
            expected = reference_gradients(x, W, b, dout)
            for name, value in zip(("dx", "dW", "db"), got["grads"]):
                expect_close(value, expected[name], name=f"{name} for {describe(x, W)}",
                             hint=gradient_hint(name, value, expected[name]))


@points(1)
def test_linear_backward_is_implemented_by_hand(student):
    """linear_forward and linear_backward use no autograd and nothing from torch.nn"""
    try:  # a function that does not run yet earns nothing here either
        student.run(forward_and_backward, random_cases(4)[:1])
    except StudentError as error:
        raise AssertionError(f"the linear layer does not run yet ({error}); this check counts once it does.") from None
    for name in ("linear_forward", "linear_backward"):
        expect_implemented_without(student, name, FORBIDDEN_DOTTED)
        tree = ast.parse(student.source_of(name))
        used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & FORBIDDEN_ATTRIBUTES)
        assert not used, (f"{name} uses .{used[0]}: compute the gradients with matrix products yourself "
                          "(dout @ W.T, x.T @ dout, dout.sum(dim=0)), without autograd.")
