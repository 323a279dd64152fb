"""Hidden tests for the Linear module (Chapter 2, section 3.1).

Forward checks give the student's layer a weight and bias drawn here (through the attributes the contract
names, or through parameters() as an optimiser would) and compare its output with x @ weight.T + bias computed
here, in float64, from those same tensors: nothing the layer computes for itself decides a pass. The
initialisation bounds are explained in THRESHOLDS.md.
"""
import math

import torch

from dlvision.grading import (StudentError, expect_close, expect_implemented_without, expect_keeps_device, points,
                              requires)

SIZES = [(1, 1), (3, 2), (5, 7), (16, 4)]

FORWARD_HINT = "forward returns x @ self.weight.T + self.bias (weight is (out_features, in_features))."
TRANSPOSED_HINT = (" weight has shape (in_features, out_features): PyTorch's convention is (out_features, "
                   "in_features), one row per output neuron, and forward computes x @ weight.T + bias.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

# The forward scenarios give a fresh Linear(in, out) the grader's weight and bias and return its output for x, with
# the shapes (or dtypes) the layer holds; no output if they do not fit the grader's tensors. (A scenario's source is
# sent on its own: no shared helpers, and at most 1000 characters.)

def linear_forward_with(n_in, n_out, weight, bias, x):
    """Weight and bias copied into self.weight and self.bias."""
    import torch

    layer = Linear(n_in, n_out)
    held = {"weight": getattr(layer, "weight", None), "bias": getattr(layer, "bias", None)}
    shapes = {k: (list(t.shape) if isinstance(t, torch.Tensor) else None) for k, t in held.items()}
    if shapes != {"weight": list(weight.shape), "bias": list(bias.shape)}:
        return {"shapes": shapes, "out": None}
    with torch.no_grad():
        held["weight"].copy_(weight)
        held["bias"].copy_(bias)
    return {"shapes": shapes, "out": layer(x)}


def linear_forward_through_parameters(n_in, n_out, weight, bias, x):
    """Weight and bias copied into the registered parameters (named_parameters(), as an optimiser sees them)."""
    import torch

    layer = Linear(n_in, n_out)
    params = dict(layer.named_parameters())
    shapes = {k: list(p.shape) for k, p in params.items()}
    if shapes != {"weight": list(weight.shape), "bias": list(bias.shape)}:
        return {"shapes": shapes, "out": None}
    with torch.no_grad():
        params["weight"].copy_(weight)
        params["bias"].copy_(bias)
    return {"shapes": shapes, "out": layer(x)}


def linear_forward_after_double(n_in, n_out, weight, bias, x):
    """Linear(in, out).double(), then float64 weight and bias copied into self.weight and self.bias."""
    import torch

    layer = Linear(n_in, n_out).double()
    held = {"weight": getattr(layer, "weight", None), "bias": getattr(layer, "bias", None)}
    dtypes = {k: (str(t.dtype) if isinstance(t, torch.Tensor) else None) for k, t in held.items()}
    shapes = {k: (list(t.shape) if isinstance(t, torch.Tensor) else None) for k, t in held.items()}
    result = {"dtypes": dtypes, "shapes": shapes}
    if shapes != {"weight": list(weight.shape), "bias": list(bias.shape)} or set(dtypes.values()) != {"torch.float64"}:
        return result
    with torch.no_grad():
        held["weight"].copy_(weight)
        held["bias"].copy_(bias)
    return {**result, "out": layer(x)}


def Linear_layer(n_in, n_out, x, device="cpu"):
    """Linear(n_in, n_out)(x), for expect_keeps_device (which moves x): the layer is created as the contract says (on
    the CPU) and moved with .to(device) when the device under test is not the CPU."""
    layer = Linear(n_in, n_out)
    if device != "cpu":
        layer = layer.to(device)
    return layer(x)


def linear_gradients(n_in, n_out, x, upstream):
    """Gradients that backward() leaves in weight.grad and bias.grad (None if the output needs no gradient)."""
    import torch

    torch.manual_seed(1)
    layer = Linear(n_in, n_out)
    out = layer(x)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        (out * upstream).sum().backward()
    return {"weight_grad": getattr(layer.weight, "grad", None), "bias_grad": getattr(layer.bias, "grad", None)}


def linear_initial_values(n_in, n_out, seed):
    import torch

    torch.manual_seed(seed)
    layer = Linear(n_in, n_out)
    return {"weight": layer.weight, "bias": layer.bias}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def draw_layer(g, n_in, n_out, n, dtype=torch.float32):
    """A weight, bias and batch x drawn here (float64 draws, cast)."""
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
            for shape in ((n_out, n_in), (n_out,), (n, n_in))]


def reference(weight, bias, x):
    return (x.double() @ weight.double().T + bias.double()).to(x.dtype)


def describe_shapes(shapes):
    return ", ".join(f"{name} {'missing' if s is None else tuple(s)}" for name, s in shapes.items()) or "nothing"


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_linear_forward_is_x_weight_t_plus_bias(student):
    """Linear(in, out)(x) equals x @ weight.T + bias, for batches of 1 and more, in float32"""
    g = torch.Generator().manual_seed(5)
    for n_in, n_out in SIZES:
        for n in (1, 6):
            weight, bias, x = draw_layer(g, n_in, n_out, n)
            got = student.run(linear_forward_with, n_in, n_out, weight, bias, x)
            expected = {"weight": [n_out, n_in], "bias": [n_out]}
            if got["shapes"] != expected:
                hint = TRANSPOSED_HINT if got["shapes"].get("weight") == [n_in, n_out] and n_in != n_out else (
                    " Create both in __init__ as attributes named weight and bias.")
                raise AssertionError(f"Linear({n_in}, {n_out}) should hold weight of shape ({n_out}, {n_in}) and "
                                     f"bias of shape ({n_out},); it holds {describe_shapes(got['shapes'])}." + hint)
            expect_close(got["out"], reference(weight, bias, x),
                         name=f"Linear({n_in}, {n_out})(x) for x of shape ({n}, {n_in})", hint=FORWARD_HINT)
    # The docstring's "created on the CPU; move them with .to(device)", on a GPU or the stand-in: it can only fail
    # this test. On a machine with a GPU, a layer made on the notebook's global `device` meets CPU inputs.
    expect_keeps_device(student, Linear_layer, 5, 3, torch.randn(4, 5, generator=g), hint=(
        "Create weight and bias on the CPU (torch.empty(out_features, in_features), no device=): the caller moves "
        "the layer with .to(device), which works because they are torch.nn.Parameter. Parameters made on the "
        "notebook's global `device` land on the GPU even when the caller wants the layer on the CPU."))


@points(1)
def test_linear_gradients_reach_weight_and_bias(student):
    """backward() through Linear fills weight.grad and bias.grad with the right values"""
    g = torch.Generator().manual_seed(6)
    x, upstream = torch.randn(8, 5, generator=g), torch.randn(8, 3, generator=g)
    got = student.run(linear_gradients, 5, 3, x, upstream)
    assert got["weight_grad"] is not None and got["bias_grad"] is not None, (
        "after backward(), weight.grad or bias.grad is None (or the output did not require gradients at all): "
        "make both torch.nn.Parameter, which require gradients, and use them, undetached, in forward.")
    expect_close(got["weight_grad"], (upstream.double().T @ x.double()).float(), name="weight.grad",
                 hint="d(sum(upstream * (x @ W.T + b))) / dW = upstream.T @ x.")
    expect_close(got["bias_grad"], upstream.double().sum(0).float(), name="bias.grad",
                 hint="d(sum(upstream * (x @ W.T + b))) / db = upstream.sum(0).")


@points(1)
def test_linear_parameters_are_the_weight_and_bias_forward_uses(student):
    """Linear(in, out).parameters() are exactly weight (out, in) and bias (out,), the tensors forward computes with"""
    g = torch.Generator().manual_seed(7)
    for n_in, n_out in ((3, 2), (1, 5), (7, 1)):
        weight, bias, x = draw_layer(g, n_in, n_out, 4)
        got = student.run(linear_forward_through_parameters, n_in, n_out, weight, bias, x)
        found, expected = got["shapes"], {"weight": [n_out, n_in], "bias": [n_out]}
        hint = ""
        if not found:
            hint = (" parameters() found nothing: assign torch.nn.Parameter(...) tensors to self.weight and "
                    "self.bias (plain tensors are not registered, so no optimiser would ever update them).")
        elif found.get("weight") == [n_in, n_out] and n_in != n_out:
            hint = TRANSPOSED_HINT
        assert found == expected, (f"Linear({n_in}, {n_out}).named_parameters(): expected weight ({n_out}, {n_in}) "
                                   f"and bias ({n_out},), found {describe_shapes(found)}." + hint)
        expect_close(got["out"], reference(weight, bias, x),
                     name=f"Linear({n_in}, {n_out})(x) after setting its parameters() to new values",
                     hint="forward must compute with the registered parameters self.weight and self.bias, not "
                          "with copies made in __init__.")


@points(1)
def test_linear_double_converts_weight_and_bias_like_any_nn_module(student):
    """Linear is a torch.nn.Module: .double() makes weight and bias float64, and forward then computes in float64"""
    g = torch.Generator().manual_seed(8)
    n_in, n_out = 4, 3
    weight, bias, x = draw_layer(g, n_in, n_out, 5, dtype=torch.float64)
    try:
        got = student.run(linear_forward_after_double, n_in, n_out, weight, bias, x)
    except StudentError as error:
        raise AssertionError(f"Linear({n_in}, {n_out}).double() then forward failed ({error}). Linear must subclass "
                             "torch.nn.Module and call super().__init__() first; then .double(), .to(device) and "
                             "parameters() work on it as on any PyTorch layer.") from None
    assert got["shapes"] == {"weight": [n_out, n_in], "bias": [n_out]}, (
        f"Linear({n_in}, {n_out}) should hold weight of shape ({n_out}, {n_in}) and bias of shape ({n_out},); "
        f"after .double() it holds {describe_shapes(got['shapes'])}.")
    assert got["dtypes"] == {"weight": "torch.float64", "bias": "torch.float64"}, (
        f"after Linear({n_in}, {n_out}).double(), weight and bias should be float64; their dtypes are "
        f"{', '.join(f'{k} {v}' for k, v in got['dtypes'].items())}. .double() converts only registered "
        "parameters: make weight and bias torch.nn.Parameter.")
    expect_close(got["out"], reference(weight, bias, x),
                 name=f"Linear({n_in}, {n_out}).double()(x) for x of shape (5, {n_in}), float64",
                 hint="forward should compute in the dtype of the parameters and the input: do not cast to float32 "
                      "inside forward. " + FORWARD_HINT)


@points(1)
def test_linear_initialisation_is_uniform_within_one_over_sqrt_in(student):
    """weight and bias start uniform in [-1/sqrt(in_features), 1/sqrt(in_features)]"""
    n_in, n_out = 256, 128
    bound = 1 / math.sqrt(n_in)
    values = student.run(linear_initial_values, n_in, n_out, 0)
    # Two fresh layers pooled, so the bias has 256 samples.
    more = student.run(linear_initial_values, n_in, n_out, 1)
    for name in ("weight", "bias"):
        for part in (values[name], more[name]):
            assert isinstance(part, torch.Tensor) and part.is_floating_point(), (
                f"Linear({n_in}, {n_out}).{name} should be a floating-point tensor, got {type(part).__name__}.")
        v = torch.cat([values[name].reshape(-1), more[name].reshape(-1)]).double()
        expected_size = 2 * (n_out * n_in if name == "weight" else n_out)
        assert v.numel() == expected_size, (
            f"Linear({n_in}, {n_out}).{name} has {v.numel() // 2} entries, expected {expected_size // 2}.")
        assert v.abs().max() <= bound * (1 + 1e-6), (
            f"Linear({n_in}, {n_out}).{name} has entries up to {v.abs().max():.4g} in size; all must lie in "
            f"[-1/sqrt(in_features), 1/sqrt(in_features)] = [-{bound:.4g}, {bound:.4g}].")
        expected_std = bound / math.sqrt(3)  # the standard deviation of U(-bound, bound)
        tolerance = 0.1 if name == "weight" else 0.25  # see THRESHOLDS.md
        assert abs(v.mean()) < bound * (0.05 if name == "weight" else 0.2), (
            f"{name} has mean {v.mean():.4g}; a uniform draw in [-{bound:.4g}, {bound:.4g}] has mean 0 "
            "(uniform_(-k, k), or (torch.rand(...) * 2 - 1) * k, not torch.rand(...) * k).")
        assert abs(v.std() / expected_std - 1) < tolerance, (
            f"{name} has standard deviation {v.std():.4g}; a uniform draw in [-{bound:.4g}, {bound:.4g}] has "
            f"{expected_std:.4g}. Fill all of the interval, uniformly (torch.empty(...).uniform_(-k, k)).")


@points(1)
@requires("test_linear_forward_is_x_weight_t_plus_bias")
def test_linear_is_implemented_by_hand(student):
    """Linear does not use torch.nn.Linear or torch.nn.functional"""
    expect_implemented_without(student, "Linear", ["torch.nn.Linear", "torch.nn.LazyLinear", "torch.nn.Bilinear",
                                                   "torch.nn.functional"])
