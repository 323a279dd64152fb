"""Hidden tests for relu_forward/relu_backward and sigmoid_forward/sigmoid_backward (Chapter 3, section 2.2).

References: torch.relu and torch.sigmoid in float64 (forward) and autograd through them in float64 (backward,
relative error below 1e-7), with a random upstream gradient. Away from the kink, the ReLU inputs stay at least
1e-3 from 0; the kink itself is tested with exact zeros (PyTorch's derivative there is 0).
"""
import ast

import torch

from dlvision.grading import StudentError, expect_close, expect_implemented_without, points

SHAPES = [(1,), (7,), (1, 1), (3, 5), (2, 3, 4), (33, 17)]
REFERENCE = {"relu": torch.relu, "sigmoid": torch.sigmoid}
FORBIDDEN_DOTTED = ["torch.nn", "F.", "torch.autograd", "torch.func", "functorch"]
FORBIDDEN_ATTRIBUTES = {"backward", "grad", "requires_grad_"}
HINTS = {
    "relu": "dx = dout where x > 0, and 0 elsewhere: the upstream gradient, masked by the sign of the input "
            "(not relu applied to dout).",
    "sigmoid": "dx = dout * s * (1 - s) with s = sigmoid(x), the forward pass's output (keep it in the cache), "
               "not the input x.",
}


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_and_backward(name, cases):
    """For each (x, dout): <name>_forward(x), then <name>_backward(dout, cache)."""
    forward, backward = globals()[name + "_forward"], globals()[name + "_backward"]
    results = []
    for x, dout in cases:
        out, cache = forward(x.clone())
        results.append({"out": out, "dx": backward(dout.clone(), cache)})
    return results


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_cases(seed, dtype=torch.float64, scale=3.0, away_from_zero=0.0):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for shape in SHAPES:
        x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
        if away_from_zero:
            x = torch.where(x.abs() < away_from_zero, x.sign() * away_from_zero + x, x)
        cases.append((x.to(dtype), torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)))
    return cases


def describe(x):
    return f"x of shape {tuple(x.shape)}, {str(x.dtype).removeprefix('torch.')}"


def reference_dx(name, x, dout):
    leaf = x.detach().double().clone().requires_grad_(True)
    (REFERENCE[name](leaf) * dout.double()).sum().backward()
    return leaf.grad.to(x.dtype)


def check(student, name, cases, what, hint):
    for (x, dout), got in zip(cases, student.run(forward_and_backward, name, cases)):
        if what == "out":
            expected = REFERENCE[name](x.double()).to(x.dtype)
            expect_close(got["out"], expected, name=f"{name}_forward, {describe(x)}", hint=hint)
        else:
            expect_close(got["dx"], reference_dx(name, x, dout), name=f"{name}_backward, {describe(x)}", hint=hint)


def check_implemented_by_hand(student, name):
    try:  # a layer that does not run yet earns nothing here either
        student.run(forward_and_backward, name, random_cases(9)[:1])
    except StudentError as error:
        raise AssertionError(f"the {name} layer does not run yet ({error}); this check counts once it does.") from None
    expect_implemented_without(student, f"{name}_backward", FORBIDDEN_DOTTED)
    tree = ast.parse(student.source_of(f"{name}_backward"))
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & FORBIDDEN_ATTRIBUTES)
    assert not used, (f"{name}_backward uses .{used[0]}: multiply the upstream gradient by the local derivative "
                      "yourself, without autograd.")


# --- relu ------------------------------------------------------------------------------------------------------

@points(1)
def test_relu_forward_matches_torch(student):
    """relu_forward matches torch.relu on many shapes, float64 and float32"""
    for dtype in (torch.float64, torch.float32):
        check(student, "relu", random_cases(1, dtype), "out", "out = max(0, x), elementwise.")


@points(1)
def test_relu_backward_matches_autograd(student):
    """relu_backward matches autograd through torch.relu in float64 (inputs away from 0)"""
    check(student, "relu", random_cases(2, away_from_zero=1e-3), "dx", HINTS["relu"])


@points(1)
def test_relu_backward_is_zero_at_zero(student):
    """relu_backward passes no gradient where x is exactly 0 (PyTorch's convention)"""
    g = torch.Generator().manual_seed(3)
    x = torch.tensor([[0.0, 1.0, -1.0, 0.0], [2.5, 0.0, -0.5, 0.0]], dtype=torch.float64)
    cases = [(x, torch.randn(2, 4, generator=g, dtype=torch.float64))]
    check(student, "relu", cases, "dx", "The derivative of relu at exactly 0 is taken to be 0: mask with x > 0, "
                                        "not x >= 0.")


@points(1)
def test_relu_backward_is_implemented_by_hand(student):
    """relu_backward uses no autograd and nothing from torch.nn"""
    check_implemented_by_hand(student, "relu")


# --- sigmoid ---------------------------------------------------------------------------------------------------

@points(1)
def test_sigmoid_forward_and_backward_match_torch(student):
    """sigmoid_forward matches torch.sigmoid and sigmoid_backward matches autograd, float64, |x| up to 30"""
    cases = random_cases(4) + random_cases(5, scale=10.0)
    check(student, "sigmoid", cases, "out", "out = 1 / (1 + exp(-x)); torch.sigmoid is allowed in the forward pass.")
    check(student, "sigmoid", cases, "dx", HINTS["sigmoid"])


@points(1)
def test_sigmoid_backward_is_implemented_by_hand(student):
    """sigmoid_backward uses no autograd and nothing from torch.nn"""
    check_implemented_by_hand(student, "sigmoid")
