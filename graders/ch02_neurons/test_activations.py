"""Hidden tests for sigmoid, tanh, relu and gelu (Chapter 2, section 1).

References are PyTorch's built-ins evaluated in float64 (values) and autograd through them in float64
(gradients), cast to the dtype under test.
"""
import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, expect_on_device, gpu,
                              points, requires)

REFERENCE = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "gelu": torch.nn.functional.gelu,  # approximate="none": the exact erf form
}

#: Shapes every activation must handle: 0-d, a batch of one, odd sizes, 3-D.
SHAPES = [(), (1,), (7,), (1, 1), (3, 5), (2, 3, 4), (33, 17)]

#: Inputs where a textbook formula overflows: exp(89) is inf in float32, exp(710) is inf in float64.
EXTREMES = [-1e4, -1e3, -710.0, -100.0, -89.0, -50.0, -20.0, -1.5, -0.25, 0.25, 1.5, 20.0, 50.0, 89.0, 100.0,
            710.0, 1e3, 1e4]

DTYPES = (torch.float32, torch.float64)

#: What each function may not use (its docstring's "Off limits", and the torch.nn layers of the same name), for
#: expect_implemented_without: full dotted paths (a module forbids everything under it), and attribute names that
#: catch the method forms (x.sigmoid()) on any object. Checked through the student's helpers and aliases, and
#: at run time on the torch functions that actually ran.
FORBIDDEN = {
    "sigmoid": (["torch.sigmoid", "torch.sigmoid_", "torch.special.expit", "torch.nn"],
                {"sigmoid", "sigmoid_", "expit"}),
    "tanh": (["torch.tanh", "torch.tanh_", "torch.nn"], {"tanh", "tanh_"}),
    "relu": (["torch.relu", "torch.relu_", "torch.threshold", "torch.threshold_", "torch.nn"],
             {"relu", "relu_", "threshold", "threshold_"}),
    "gelu": (["torch.nn"], {"gelu"}),
}

HINTS = {
    "sigmoid": "Use 1 / (1 + exp(-x)) where x >= 0 and exp(x) / (1 + exp(x)) where x < 0.",
    "tanh": "tanh(x) = (1 - exp(-2x)) / (1 + exp(-2x)) for x >= 0, and tanh(-x) = -tanh(x).",
    "relu": "relu(x) is x where x > 0 and 0 elsewhere.",
    "gelu": "Use the exact form x * 0.5 * (1 + erf(x / sqrt(2))), not the tanh approximation.",
}

STABILITY_HINT = ("inf or nan for large |x| means an exponential overflowed (exp(89) is already inf in float32). "
                  "Only ever exponentiate numbers <= 0, and remember that torch.where computes both branches.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def call_each(name, xs):
    """The student's function `name` applied to each tensor of xs."""
    f = globals()[name]
    return [f(x) for x in xs]


def gradient_of(name, x, upstream):
    """d/dx of sum(f(x) * upstream) by autograd through the student's f; None if the graph is cut."""
    import torch

    x = x.clone().requires_grad_(True)
    y = globals()[name](x)
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        return None
    (y * upstream).sum().backward()
    return x.grad


def relu_and_its_input_afterwards(x):
    """relu(x), and x as it is after the call (judged on the trusted side against the x that was sent)."""
    out = relu(x)
    return {"out": out, "x_after": x}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_inputs(seed, scale=4.0, away_from_zero=0.0):
    """One random tensor per shape and dtype (float64 draws, so both dtypes see the same numbers)."""
    g = torch.Generator().manual_seed(seed)
    xs = []
    for dtype in DTYPES:
        for shape in SHAPES:
            x = torch.randn(shape, generator=g, dtype=torch.float64) * scale
            if away_from_zero:
                x = torch.where(x.abs() < away_from_zero, x.sign() * away_from_zero + x, x)
            xs.append(x.to(dtype))
    return xs


def describe(x):
    return f"x of shape {tuple(x.shape)}, {str(x.dtype).removeprefix('torch.')}"


def reference_gradient(name, x, upstream):
    x64 = x.detach().double().requires_grad_(True)
    (REFERENCE[name](x64) * upstream.double()).sum().backward()
    return x64.grad.to(x.dtype)


def check_values(student, name, xs, hint):
    got = student.run(call_each, name, xs)
    for x, y in zip(xs, got):
        expect_close(y, REFERENCE[name](x.double()).to(x.dtype), name=f"{name}(x), {describe(x)}", hint=hint)


def check_gradients(student, name, xs, seed, hint):
    g = torch.Generator().manual_seed(seed)
    for x in xs:
        upstream = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
        grad = student.run(gradient_of, name, x, upstream)
        assert grad is not None, (
            f"{name}(x) is not connected to x in the autograd graph, so no gradient reaches x ({describe(x)}). "
            "Build the result from x with torch operations only: no .detach(), .item(), .numpy(), .tolist() "
            "or torch.tensor(...) of the input.")
        expect_close(grad, reference_gradient(name, x, upstream), name=f"the gradient of {name}, {describe(x)}",
                     hint=hint)


def check_implemented_by_hand(student, name):
    """Static (through helpers, aliases, imports) and at run time, on an input that crosses every branch.

    Tests that call this are marked @requires(<the function's value test>): a hollow function uses nothing
    forbidden either, and must not earn the point.
    """
    dotted, attributes = FORBIDDEN[name]
    x = torch.linspace(-6, 6, 13, dtype=torch.float64)
    expect_implemented_without(student, name, dotted, attributes=attributes, calling=((x,), {}))


def check_device(student, name):
    """The docstring's "on any device ... same device", on a GPU or the stand-in device. Kernel evidence: it can only
    fail the value test it ends, never earn a point of its own."""
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(11))
    expect_keeps_device(student, name, x, hint=(
        f"{name} must work on any device and return its result on the device of x. Make new tensors with "
        "torch.zeros_like(x) / torch.ones_like(x), or pass device=x.device (and dtype=x.dtype); plain Python "
        "numbers (torch.where(x > 0, x, 0)) are fine. torch.zeros(x.shape) lives on the CPU, and the notebook's "
        "global `device` is not the device of x."))


def extremes(dtype):
    return torch.tensor(EXTREMES, dtype=dtype)


# --- sigmoid ---------------------------------------------------------------------------------------------------

@points(1)
def test_sigmoid_matches_torch_on_many_shapes(student):
    """sigmoid matches torch.sigmoid on many shapes (0-d to 3-D), float32 and float64"""
    check_values(student, "sigmoid", random_inputs(1), HINTS["sigmoid"])
    check_device(student, "sigmoid")


@points(1)
def test_sigmoid_is_stable_for_large_inputs(student):
    """sigmoid gives finite, correct values for |x| up to 1e4"""
    check_values(student, "sigmoid", [extremes(d) for d in DTYPES], STABILITY_HINT)


@points(1)
def test_sigmoid_gradient_matches_autograd(student):
    """the gradient through sigmoid matches autograd through torch.sigmoid"""
    check_gradients(student, "sigmoid", random_inputs(2, scale=3.0)[::3], 12, HINTS["sigmoid"])


@points(1)
def test_sigmoid_gradient_is_finite_for_large_inputs(student):
    """the gradient through sigmoid stays finite and correct for |x| up to 1e4"""
    check_gradients(student, "sigmoid", [extremes(d) for d in DTYPES], 13,
                    "A nan gradient where the value is right: 1 / (1 + exp(-x)) with exp(-x) = inf gives the right "
                    "value 0, but autograd computes its derivative as 0 * inf = nan. " + STABILITY_HINT)


@points(1)
@requires("test_sigmoid_matches_torch_on_many_shapes")
def test_sigmoid_is_implemented_by_hand(student):
    """sigmoid does not call torch.sigmoid or another ready-made sigmoid"""
    check_implemented_by_hand(student, "sigmoid")


# --- tanh ------------------------------------------------------------------------------------------------------

@points(1)
def test_tanh_matches_torch_on_many_shapes(student):
    """tanh matches torch.tanh on many shapes (0-d to 3-D), float32 and float64"""
    check_values(student, "tanh", random_inputs(3), HINTS["tanh"])
    check_device(student, "tanh")


@points(1)
def test_tanh_is_stable_for_large_inputs(student):
    """tanh gives finite, correct values for |x| up to 1e4"""
    check_values(student, "tanh", [extremes(d) for d in DTYPES],
                 "(e^x - e^-x) / (e^x + e^-x) is inf / inf = nan once e^x overflows. " + STABILITY_HINT)


@points(1)
def test_tanh_gradient_matches_autograd(student):
    """the gradient through tanh matches autograd through torch.tanh"""
    check_gradients(student, "tanh", random_inputs(4, scale=2.0)[::3], 14, HINTS["tanh"])


@points(1)
def test_tanh_gradient_is_finite_for_large_inputs(student):
    """the gradient through tanh stays finite and correct for |x| up to 1e4"""
    check_gradients(student, "tanh", [extremes(d) for d in DTYPES], 15, STABILITY_HINT)


@points(1)
@requires("test_tanh_matches_torch_on_many_shapes")
def test_tanh_is_implemented_by_hand(student):
    """tanh does not call torch.tanh or another ready-made tanh"""
    check_implemented_by_hand(student, "tanh")


# --- relu ------------------------------------------------------------------------------------------------------

@points(1)
def test_relu_matches_torch_on_many_shapes(student):
    """relu matches torch.relu on many shapes (0-d to 3-D) and on |x| up to 1e4, float32 and float64"""
    check_values(student, "relu", random_inputs(5) + [extremes(d) for d in DTYPES], HINTS["relu"])
    check_device(student, "relu")


@points(1)
def test_relu_gradient_matches_autograd(student):
    """the gradient through relu is 1 for x > 0 and 0 for x < 0"""
    check_gradients(student, "relu", random_inputs(6, away_from_zero=1e-3)[::3], 16,
                    "The gradient must flow through x itself where x > 0 (e.g. torch.where(x > 0, x, 0)).")


@points(1)
@requires("test_relu_matches_torch_on_many_shapes")
def test_relu_does_not_modify_its_input(student):
    """relu returns a new tensor and leaves its input unchanged"""
    g = torch.Generator().manual_seed(7)
    for dtype in DTYPES:
        x = torch.randn(5, 6, generator=g, dtype=torch.float64).to(dtype)
        got = student.run(relu_and_its_input_afterwards, x)
        after = got["x_after"]
        changed = int((after != x).sum()) if isinstance(after, torch.Tensor) and after.shape == x.shape else x.numel()
        assert changed == 0, (
            f"relu changed its input: after relu(x), {changed} of the {x.numel()} entries of x "
            f"({str(dtype).removeprefix('torch.')}, {int((x < 0).sum())} of them negative) were no longer what the "
            "caller passed in. Assigning into x (x[x < 0] = 0) or an in-place method (x.clamp_(...)) overwrites "
            "the caller's data; build a new tensor instead, e.g. with torch.where or x.clamp(min=0).")
        expect_close(got["out"], torch.relu(x.double()).to(dtype), name=f"relu(x), x of shape (5, 6), "
                     f"{str(dtype).removeprefix('torch.')}", hint=HINTS["relu"])


@points(1)
@requires("test_relu_matches_torch_on_many_shapes")
def test_relu_is_implemented_by_hand(student):
    """relu does not call torch.relu or another ready-made relu"""
    check_implemented_by_hand(student, "relu")


# --- gelu ------------------------------------------------------------------------------------------------------

@points(1)
def test_gelu_matches_the_exact_erf_form_on_many_shapes(student):
    """gelu matches the exact x * Phi(x) (torch's gelu) on many shapes, float32 and float64"""
    check_values(student, "gelu", random_inputs(8), HINTS["gelu"])
    check_device(student, "gelu")


@points(1)
def test_gelu_is_stable_for_large_inputs(student):
    """gelu gives finite, correct values for |x| up to 1e4"""
    check_values(student, "gelu", [extremes(d) for d in DTYPES], HINTS["gelu"])


@points(1)
def test_gelu_gradient_matches_autograd(student):
    """the gradient through gelu matches autograd through the exact GELU, also for |x| up to 1e4"""
    check_gradients(student, "gelu", random_inputs(9, scale=3.0)[::3] + [extremes(d) for d in DTYPES], 19,
                    HINTS["gelu"])


@points(1)
@requires("test_gelu_matches_the_exact_erf_form_on_many_shapes")
def test_gelu_is_implemented_by_hand(student):
    """gelu does not call torch.nn.functional.gelu or another ready-made gelu"""
    check_implemented_by_hand(student, "gelu")


# --- all four on a GPU -----------------------------------------------------------------------------------------

@gpu
@points(1)
@requires("test_sigmoid_matches_torch_on_many_shapes", "test_tanh_matches_torch_on_many_shapes",
          "test_relu_matches_torch_on_many_shapes", "test_gelu_matches_the_exact_erf_form_on_many_shapes")
def test_activations_keep_tensors_on_the_gpu(student, device):
    """sigmoid, tanh, relu and gelu return CUDA tensors for CUDA inputs, with the right values"""
    x = torch.linspace(-20, 20, 101)
    for name in ("sigmoid", "tanh", "relu", "gelu"):
        expect_on_device(getattr(student.on(device), name)(x), device, REFERENCE[name](x.double()).float(),
                         name=f"{name} on cuda", hint="Create new tensors with torch.zeros_like(x), or pass "
                                                      "device=x.device, so that they live where the input does.")
