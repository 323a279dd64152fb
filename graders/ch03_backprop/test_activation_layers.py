"""Hidden tests for relu_forward/relu_backward and sigmoid_forward/sigmoid_backward (Chapter 3, section 2.2).

References: torch.relu and torch.sigmoid in float64 (forward) and autograd through them in float64 (backward,
relative error below 1e-7), with a random upstream gradient. Away from the kink, the ReLU inputs stay at least
1e-3 from 0; the kink itself is tested with exact zeros (PyTorch's derivative there is 0).
"""
import torch

from dlvision.grading import (StudentError, expect_close, expect_implemented_without, expect_keeps_device, points,
                              requires)

SHAPES = [(1,), (7,), (1, 1), (3, 5), (2, 3, 4), (33, 17)]
REFERENCE = {"relu": torch.relu, "sigmoid": torch.sigmoid}

#: Off limits (the notebook's introduction): autograd in any form, torch.nn (torch.nn.functional included).
#: torch.relu and torch.sigmoid themselves are allowed.
FORBIDDEN = ["torch.nn", "torch.autograd", "torch.func", "torch.Tensor.backward", "torch.Tensor.requires_grad_"]
FORBIDDEN_ATTRIBUTES = {"backward", "requires_grad", "requires_grad_", "retain_grad"}

HINTS = {
    "relu": "dx = dout where x > 0, and 0 elsewhere: the upstream gradient, masked by the sign of the input "
            "(not relu applied to dout).",
    "sigmoid": "dx = dout * s * (1 - s) with s = sigmoid(x), the forward pass's output (keep it in the cache), "
               "not the input x.",
}


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_and_backward(name, cases):
    """For each (x, dout): <name>_forward(x), then <name>_backward(dout, cache); what the forward pass returned, in
    words, if it is not a pair."""
    import torch

    forward, backward = globals()[name + "_forward"], globals()[name + "_backward"]
    results = []
    for x, dout in cases:
        returned = forward(x.clone())
        if not (isinstance(returned, (tuple, list)) and len(returned) == 2):
            results.append({"returned": [list(returned.shape)] if isinstance(returned, torch.Tensor) else
                            len(returned) if isinstance(returned, (tuple, list)) else None})
            continue
        out, cache = returned
        results.append({"out": out, "dx": backward(dout.clone(), cache)})
    return results


def forward_then_backward(x, dout, name, device="cpu"):
    """<name>_forward(x), then <name>_backward(dout, cache), for expect_keeps_device (which moves x and dout)."""
    out, cache = globals()[name + "_forward"](x)
    return {"out": out, "dx": globals()[name + "_backward"](dout, cache)}


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


def results(student, name, cases):
    """The student's {"out", "dx"} for each case, after checking that the forward pass returned a pair."""
    got = student.run(forward_and_backward, name, cases)
    for (x, _), result in zip(cases, got):
        if "returned" in result:
            returned = result["returned"]
            found = (f"a tensor of shape {tuple(v for v in returned[0] if type(v) is int)}"  # plain ints only
                     if isinstance(returned, list) and isinstance(returned[0], list) else
                     f"{returned} values" if type(returned) is int else "something else")
            raise AssertionError(f"{name}_forward should return a pair (out, cache) for {describe(x)}, got {found}. "
                                 f"The cache is what {name}_backward needs later.")
    return got


def check_forward(student, name, cases, hint):
    for (x, _), got in zip(cases, results(student, name, cases)):
        expect_close(got["out"], REFERENCE[name](x.double()).to(x.dtype), name=f"{name}_forward, {describe(x)}",
                     hint=hint)


def check_backward(student, name, cases, hint):
    for (x, dout), got in zip(cases, results(student, name, cases)):
        expect_close(got["dx"], reference_dx(name, x, dout), name=f"{name}_backward, {describe(x)}", hint=hint)


def check_device(student, name, backward):
    """The forward pass's "shape, dtype and device of x" (and, with ``backward``, dx on that device too), on a GPU or
    the stand-in. Kernel evidence: it can only fail the value test it ends, never earn a point of its own."""
    x, dout = random_cases(8, torch.float32)[4]
    hint = (f"{name}_forward and {name}_backward must work on any device: out and dx stay on the device of x. Make "
            "new tensors with torch.zeros_like(...) or device=x.device (plain Python numbers are fine); "
            "torch.zeros(x.shape) lives on the CPU, and the notebook's global `device` is not the device of x.")
    if backward:
        expect_keeps_device(student, forward_then_backward, x, dout, name, hint=hint)
    else:
        expect_keeps_device(student, f"{name}_forward", x, hint=hint)


def check_implemented_by_hand(student, name):
    """Both passes of the layer: static reach, and the torch functions that run (with the layer's own cache)."""
    x, dout = random_cases(9)[3]
    forward_call = ((x,), {})
    try:
        _, cache = getattr(student, f"{name}_forward")(x)
        backward_call = ((dout, cache), {})
    except (StudentError, TypeError, ValueError):
        backward_call = None  # a cache that is not plain data cannot be sent back: the static check alone then
    for function, calling in ((f"{name}_forward", forward_call), (f"{name}_backward", backward_call)):
        try:
            expect_implemented_without(student, function, FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES,
                                       calling=calling)
        except AssertionError as error:
            raise AssertionError(f"{error} Use tensor operations (torch.{name} is fine in the forward pass) and "
                                 "multiply the upstream gradient by the local derivative yourself, entry by entry, "
                                 "without autograd or torch.nn.") from None


# --- relu ------------------------------------------------------------------------------------------------------

@points(1)
def test_relu_forward_matches_torch(student):
    """relu_forward matches torch.relu on many shapes, float64 and float32"""
    for dtype in (torch.float64, torch.float32):
        check_forward(student, "relu", random_cases(1, dtype), "out = max(0, x), elementwise.")
    check_device(student, "relu", backward=False)


@points(1)
def test_relu_backward_matches_autograd(student):
    """relu_backward matches autograd through torch.relu in float64 (inputs away from 0)"""
    check_backward(student, "relu", random_cases(2, away_from_zero=1e-3), HINTS["relu"])
    check_device(student, "relu", backward=True)


@points(1)
def test_relu_backward_is_zero_at_zero(student):
    """relu_backward passes no gradient where x is exactly 0 (PyTorch's convention)"""
    g = torch.Generator().manual_seed(3)
    x = torch.tensor([[0.0, 1.0, -1.0, 0.0], [2.5, 0.0, -0.5, 0.0]], dtype=torch.float64)
    check_backward(student, "relu", [(x, torch.randn(2, 4, generator=g, dtype=torch.float64))],
                   "The derivative of relu at exactly 0 is taken to be 0: mask with x > 0, not x >= 0.")


@points(1)
@requires("test_relu_forward_matches_torch", "test_relu_backward_matches_autograd")
def test_relu_layer_is_implemented_by_hand(student):
    """relu_forward and relu_backward use no autograd and nothing from torch.nn"""
    check_implemented_by_hand(student, "relu")


# --- sigmoid ---------------------------------------------------------------------------------------------------

@points(1)
def test_sigmoid_forward_matches_torch(student):
    """sigmoid_forward matches torch.sigmoid in float64, |x| up to about 30"""
    check_forward(student, "sigmoid", random_cases(4) + random_cases(5, scale=10.0),
                  "out = 1 / (1 + exp(-x)); torch.sigmoid is allowed in the forward pass.")
    check_device(student, "sigmoid", backward=False)


@points(1)
def test_sigmoid_backward_matches_autograd(student):
    """sigmoid_backward matches autograd through torch.sigmoid in float64, |x| up to about 30"""
    check_backward(student, "sigmoid", random_cases(6) + random_cases(7, scale=10.0), HINTS["sigmoid"])
    check_device(student, "sigmoid", backward=True)


@points(1)
@requires("test_sigmoid_forward_matches_torch", "test_sigmoid_backward_matches_autograd")
def test_sigmoid_layer_is_implemented_by_hand(student):
    """sigmoid_forward and sigmoid_backward use no autograd and nothing from torch.nn"""
    check_implemented_by_hand(student, "sigmoid")
