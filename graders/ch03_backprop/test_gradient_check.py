"""Hidden tests for numerical_gradient and relative_error (Chapter 3, section 3).

numerical_gradient is compared with autograd in float64 on three smooth test functions. Central differences
with h = 1e-5 agree with autograd to a worst-case error of about 2e-8 relative to the largest gradient entry,
a one-sided difference only to about 5e-5 at best; the bound, 1e-6, is explained in THRESHOLDS.md. That h is
used is checked on sum(x^3), whose central difference is exactly 3 x^2 + h^2.
"""
import torch

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

#: The test functions, defined once and run both here and in the student's kernel (each returns a 0-d tensor).
TEST_FUNCTIONS = '''
def sine_times_square(x):
    return (torch.sin(3 * x) * x ** 2).sum()

def tanh_layer(x):
    w = torch.linspace(-1.0, 1.0, x.shape[-1], dtype=x.dtype)
    return torch.tanh(x @ w + 0.5).pow(2).sum()

def log_sum_exp_plus_cube(x):
    return torch.logsumexp(x.reshape(-1), dim=0) + 0.1 * (x ** 3).sum()

def cube_sum(x):
    return (x ** 3).sum()
'''
FUNCTIONS = ("sine_times_square", "tanh_layer", "log_sum_exp_plus_cube")
SHAPES = [(1,), (5,), (3, 4), (2, 3, 2)]

#: The largest error allowed, as a fraction of the gradient's largest entry (see THRESHOLDS.md).
NUMERICAL_BOUND = 1e-6

#: Off limits: autograd in any form. numerical_gradient only evaluates f.
FORBIDDEN = ["torch.autograd", "torch.func", "torch.Tensor.backward", "torch.Tensor.requires_grad_"]
FORBIDDEN_ATTRIBUTES = {"backward", "requires_grad", "requires_grad_", "retain_grad"}


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def numerical_gradients(source, cases, **kwargs):
    """numerical_gradient(f, x) for each (function name, x), with x as it is afterwards."""
    scope = {"torch": __import__("torch")}
    exec(source, scope)
    results = []
    for name, x in cases:
        x = x.clone()
        grad = numerical_gradient(scope[name], x, **kwargs)
        results.append({"grad": grad, "x_after": x})
    return results


def numerical_gradient_of_a_cube(x, device="cpu"):
    """numerical_gradient of sum(x^3), for expect_keeps_device (which moves x)."""
    return numerical_gradient(lambda t: (t ** 3).sum(), x)


def relative_errors(pairs):
    return [relative_error(a, b) for a, b in pairs]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def functions():
    scope = {"torch": torch}
    exec(TEST_FUNCTIONS, scope)
    return scope


def random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    return [(name, torch.randn(shape, generator=g, dtype=torch.float64)) for name in FUNCTIONS for shape in SHAPES]


def autograd_gradient(name, x):
    leaf = x.clone().requires_grad_(True)
    functions()[name](leaf).backward()
    return leaf.grad


def describe(name, x):
    return f"{name}(x) at x of shape {tuple(x.shape)}"


def gradients(student, cases, **kwargs):
    return student.run(numerical_gradients, TEST_FUNCTIONS, cases, **kwargs)


# --- numerical_gradient ----------------------------------------------------------------------------------------

@points(2)
def test_numerical_gradient_matches_autograd(student):
    """numerical_gradient agrees with autograd to 1e-6 (relative to the largest entry) on smooth functions"""
    cases = random_cases(1)
    for (name, x), got in zip(cases, gradients(student, cases)):
        expected = autograd_gradient(name, x)
        grad = got["grad"]
        assert isinstance(grad, torch.Tensor) and grad.shape == x.shape and grad.dtype == x.dtype, (
            f"numerical_gradient should return a tensor of the shape and dtype of x, {tuple(x.shape)} "
            f"{x.dtype}, for {describe(name, x)}; got "
            + (f"{tuple(grad.shape)} {grad.dtype}." if isinstance(grad, torch.Tensor) else type(grad).__name__ + "."))
        expect_close(grad, expected, rtol=0.0, atol=NUMERICAL_BOUND * expected.abs().max().item(),
                     name=f"the numerical gradient of {describe(name, x)}",
                     hint="Use the central difference (f(x + h e_i) - f(x - h e_i)) / (2h): its error is of order "
                          "h^2; the one-sided (f(x + h e_i) - f(x)) / h is only of order h.")
    # The docstring's "shape, dtype and device of x", on a GPU or the stand-in: it can only fail this test. (On the
    # stand-in, code that reads values with .item() or float() is inconclusive and passes: see THRESHOLDS.md.)
    expect_keeps_device(student, numerical_gradient_of_a_cube, torch.randn(2, 3, dtype=torch.float64), hint=(
        "numerical_gradient must return a tensor on the device of x: make it with torch.zeros_like(x) (or "
        "device=x.device), not torch.zeros(x.shape), which lives on the CPU."))


@points(1)
def test_numerical_gradient_uses_the_step_h(student):
    """numerical_gradient uses the step h it is given: for sum(x^3) the central difference is 3 x^2 + h^2"""
    g = torch.Generator().manual_seed(2)
    cases = [("cube_sum", torch.randn(shape, generator=g, dtype=torch.float64)) for shape in ((4,), (2, 3))]
    for h in (0.1, 0.01):
        for (name, x), got in zip(cases, gradients(student, cases, h=h)):
            expect_close(got["grad"], 3 * x ** 2 + h ** 2,
                         name=f"the numerical gradient of sum(x^3) at x of shape {tuple(x.shape)} with h = {h:g}",
                         hint="((x + h)^3 - (x - h)^3) / (2h) = 3x^2 + h^2 exactly: perturb x by the argument h, "
                              "not by a fixed number, and use the central difference.")
    # The signature's default step: at x = 0 the central difference of sum(x^3) is h^2 = 1e-10 exactly.
    x = torch.zeros(3, dtype=torch.float64)
    got = gradients(student, [("cube_sum", x)])[0]
    expect_close(got["grad"], torch.full((3,), 1e-5 ** 2, dtype=torch.float64), rtol=1e-6, atol=0.0,
                 name="the numerical gradient of sum(x^3) at x = 0 without h (the default)",
                 hint="At x = 0 the central difference of sum(x^3) is exactly h^2, so it shows the step used: "
                      "without an h argument it must be the signature's default, h=1e-5.")


@points(1)
@requires("test_numerical_gradient_matches_autograd")
def test_numerical_gradient_restores_x_bit_for_bit(student):
    """numerical_gradient leaves x exactly as it found it, bit for bit"""
    cases = random_cases(3)
    for (name, x), got in zip(cases, gradients(student, cases)):
        after = got["x_after"]
        assert isinstance(after, torch.Tensor) and after.shape == x.shape and after.dtype == x.dtype, (
            f"x should keep its shape and dtype, {tuple(x.shape)} {x.dtype}; after numerical_gradient it is "
            + (f"{tuple(after.shape)} {after.dtype}." if isinstance(after, torch.Tensor)
               else type(after).__name__ + "."))
        changed = (after != x).sum().item()
        assert changed == 0, (
            f"after numerical_gradient, {changed} of the {x.numel()} entries of x differ from before, by up to "
            f"{(after - x).abs().max().item():.3g} (for {describe(name, x)}). Save each entry's old value and "
            "assign it back after the two evaluations: adding h and subtracting it again does not always give "
            "the same float, and x is the caller's tensor.")


@points(1)
def test_relative_error_follows_the_formula(student):
    """relative_error(a, b) is max |a - b| / max(1e-8, |a| + |b|) over the entries, as a Python float"""
    g = torch.Generator().manual_seed(4)
    pairs = [(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 3.0])),
             (torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])),
             (torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0])),
             (torch.tensor([1e-9, 100.0]), torch.tensor([-1e-9, 100.0 + 1e-3])),
             (torch.tensor([[1e3, 1.0], [2.0, 5.0]], dtype=torch.float64),
              torch.tensor([[1e3 + 10.0, 1.5], [2.0, 5.0]], dtype=torch.float64))]
    a = torch.randn(4, 6, generator=g, dtype=torch.float64)
    pairs.append((a, a + 1e-6 * torch.randn(4, 6, generator=g, dtype=torch.float64)))
    got = student.run(relative_errors, pairs)
    for (a, b), value in zip(pairs, got):
        a64, b64 = a.double(), b.double()
        expected = ((a64 - b64).abs() / (a64.abs() + b64.abs()).clamp(min=1e-8)).max().item()
        assert isinstance(value, float), f"relative_error should return a Python float, got {type(value).__name__}."
        assert abs(value - expected) <= 1e-9 * abs(expected) + 1e-15, (
            f"relative_error({a.tolist()}, {b.tolist()}) = {value!r}, expected {expected!r}: the maximum over the "
            "entries of |a - b| / max(1e-8, |a| + |b|), computed entry by entry (not max|a - b| / max(|a| + |b|)).")


@points(1)
@requires("test_numerical_gradient_matches_autograd")
def test_numerical_gradient_uses_no_autograd(student):
    """numerical_gradient only evaluates f: no autograd in it or in anything it calls"""
    try:
        expect_implemented_without(student, "numerical_gradient", FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES)
    except AssertionError as error:
        raise AssertionError(f"{error} numerical_gradient should only evaluate f at x + h e_i and x - h e_i, "
                             "never call autograd.") from None
