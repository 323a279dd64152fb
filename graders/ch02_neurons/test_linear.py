"""Hidden tests for the Linear module (Chapter 2, section 3.1).

The forward reference is x @ weight.T + bias computed here, in float64, from the parameters the student's
layer holds. The initialisation bounds are explained in THRESHOLDS.md.
"""
import math

import torch

from dlvision.grading import StudentError, expect_close, expect_implemented_without, points

SIZES = [(1, 1), (3, 2), (5, 7), (16, 4)]


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def linear_facts(in_features, out_features):
    import torch

    layer = Linear(in_features, out_features)
    return {
        "is_module": isinstance(layer, torch.nn.Module),
        "parameters": {name: list(p.shape) for name, p in layer.named_parameters()},
        "weight": getattr(layer, "weight", None),
        "bias": getattr(layer, "bias", None),
    }


def linear_forward(in_features, out_features, x):
    """A fresh Linear(in, out), its weight and bias as it holds them, and its output for x."""
    import torch

    torch.manual_seed(0)
    layer = Linear(in_features, out_features)
    return {"weight": layer.weight, "bias": layer.bias, "out": layer(x)}


def linear_gradients(in_features, out_features, x, upstream):
    """Gradients that backward() leaves in weight.grad and bias.grad (None if the output needs no gradient)."""
    import torch

    torch.manual_seed(1)
    layer = Linear(in_features, out_features)
    out = layer(x)
    if isinstance(out, torch.Tensor) and out.requires_grad:
        (out * upstream).sum().backward()
    return {"weight_grad": getattr(layer.weight, "grad", None), "bias_grad": getattr(layer.bias, "grad", None)}


def linear_initial_values(in_features, out_features, seed):
    import torch

    torch.manual_seed(seed)
    layer = Linear(in_features, out_features)
    return {"weight": layer.weight, "bias": layer.bias}


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_linear_is_an_nn_module(student):
    """Linear subclasses torch.nn.Module"""
    facts = student.run(linear_facts, 3, 2)
    assert facts["is_module"], ("Linear must subclass torch.nn.Module (class Linear(torch.nn.Module)) and call "
                                "super().__init__() first, so that PyTorch can find its parameters.")


@points(1)
def test_linear_registers_weight_and_bias_as_parameters(student):
    """Linear(in, out) registers exactly two parameters: weight (out, in) and bias (out,)"""
    for n_in, n_out in ((3, 2), (1, 5), (7, 1)):
        facts = student.run(linear_facts, n_in, n_out)
        found = {name: tuple(shape) for name, shape in facts["parameters"].items()}
        expected = {"weight": (n_out, n_in), "bias": (n_out,)}
        hint = ""
        if not found:
            hint = (" parameters() found nothing: assign torch.nn.Parameter(...) tensors to self.weight and "
                    "self.bias (plain tensors are not registered, so no optimiser would ever update them).")
        elif found.get("weight") == (n_in, n_out) and n_in != n_out:
            hint = (" weight has shape (in_features, out_features): PyTorch's convention is (out_features, "
                    "in_features), one row per output neuron, and forward computes x @ weight.T + bias.")
        assert found == expected, (f"Linear({n_in}, {n_out}).named_parameters(): expected {expected}, "
                                   f"found {found}." + hint)


@points(2)
def test_linear_forward_is_x_weight_t_plus_bias(student):
    """Linear(in, out)(x) equals x @ weight.T + bias, for batches of 1 and more, in float32"""
    g = torch.Generator().manual_seed(5)
    for n_in, n_out in SIZES:
        for n in (1, 6):
            x = torch.randn(n, n_in, generator=g)
            got = student.run(linear_forward, n_in, n_out, x)
            weight, bias = got["weight"], got["bias"]
            assert isinstance(weight, torch.Tensor) and weight.shape == (n_out, n_in), (
                f"Linear({n_in}, {n_out}).weight should be a tensor of shape ({n_out}, {n_in}), got "
                f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}.")
            expected = (x.double() @ weight.double().T + bias.double()).float()
            expect_close(got["out"], expected, name=f"Linear({n_in}, {n_out})(x) for x of shape ({n}, {n_in})",
                         hint="forward returns x @ self.weight.T + self.bias (weight is (out, in)).")


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
    expect_close(got["bias_grad"], upstream.double().sum(0).float(), name="bias.grad")


@points(1)
def test_linear_initialisation_is_uniform_within_one_over_sqrt_in(student):
    """weight and bias start uniform in [-1/sqrt(in_features), 1/sqrt(in_features)]"""
    n_in, n_out = 256, 128
    bound = 1 / math.sqrt(n_in)
    values = student.run(linear_initial_values, n_in, n_out, 0)
    # Two fresh layers pooled, so the bias has 256 samples.
    more = student.run(linear_initial_values, n_in, n_out, 1)
    for name in ("weight", "bias"):
        v = torch.cat([values[name].reshape(-1), more[name].reshape(-1)]).double()
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
def test_linear_is_implemented_by_hand(student):
    """Linear does not use torch.nn.Linear or torch.nn.functional"""
    try:  # a class that does not run yet earns nothing here either
        student.run(linear_forward, 3, 2, torch.ones(1, 3))
    except StudentError as error:
        raise AssertionError(f"Linear does not run yet ({error}); this check counts once it does.") from None
    expect_implemented_without(student, "Linear", ["torch.nn.Linear", "nn.Linear", "torch.nn.functional", "F.",
                                                   "torch.nn.LazyLinear", "torch.nn.Bilinear"])
