"""Hidden tests for sigmoid, tanh, relu and gelu (Chapter 2, section 1).

References are PyTorch's built-ins evaluated in float64 (values) and autograd through them in float64
(gradients), cast to the dtype under test.
"""
import ast

import torch

from dlvision.grading import StudentError, expect_close, expect_implemented_without, gpu, points

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

#: Names whose use inside each function means it was not implemented by hand: dotted prefixes for
#: expect_implemented_without, and attribute names that also catch the method forms (x.sigmoid()).
FORBIDDEN = {
    "sigmoid": (["torch.nn", "F.", "torch.special", "scipy"], {"sigmoid", "sigmoid_", "expit"}),
    "tanh": (["torch.nn", "F.", "scipy"], {"tanh", "tanh_"}),
    "relu": (["torch.nn", "F."], {"relu", "relu_", "threshold", "threshold_"}),
    "gelu": (["torch.nn", "F."], {"gelu"}),
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


def relu_leaves_its_input_alone(x):
    before = x.clone()
    relu(x)
    return bool((x == before).all())


def activations_on_cuda(x):
    """Each activation on a CUDA tensor: (device type, values moved to the CPU)."""
    x = x.to("cuda")
    return {name: (str(f(x).device.type), f(x).cpu()) for name, f in
            (("sigmoid", sigmoid), ("tanh", tanh), ("relu", relu), ("gelu", gelu))}


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
    try:  # a function that does not run yet earns nothing here either
        student.run(call_each, name, [torch.linspace(-3, 3, 7)])
    except StudentError as error:
        raise AssertionError(f"{name} does not run yet ({error}); this check counts once it does.") from None
    dotted, attributes = FORBIDDEN[name]
    expect_implemented_without(student, name, dotted)
    tree = ast.parse(student.source_of(name))
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & attributes)
    assert not used, (f"{name} calls .{used[0]}(...), a ready-made version of what this exercise asks you to "
                      "implement yourself with tensor operations (torch.exp, torch.erf, torch.where, ...).")


def extremes(dtype):
    return torch.tensor(EXTREMES, dtype=dtype)


# --- sigmoid ---------------------------------------------------------------------------------------------------

@points(1)
def test_sigmoid_matches_torch_on_many_shapes(student):
    """sigmoid matches torch.sigmoid on many shapes (0-d to 3-D), float32 and float64"""
    check_values(student, "sigmoid", random_inputs(1), HINTS["sigmoid"])


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
def test_sigmoid_is_implemented_by_hand(student):
    """sigmoid does not call torch.sigmoid or another ready-made sigmoid"""
    check_implemented_by_hand(student, "sigmoid")


# --- tanh ------------------------------------------------------------------------------------------------------

@points(1)
def test_tanh_matches_torch_on_many_shapes(student):
    """tanh matches torch.tanh on many shapes (0-d to 3-D), float32 and float64"""
    check_values(student, "tanh", random_inputs(3), HINTS["tanh"])


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
def test_tanh_is_implemented_by_hand(student):
    """tanh does not call torch.tanh or another ready-made tanh"""
    check_implemented_by_hand(student, "tanh")


# --- relu ------------------------------------------------------------------------------------------------------

@points(1)
def test_relu_matches_torch_on_many_shapes(student):
    """relu matches torch.relu on many shapes (0-d to 3-D) and on |x| up to 1e4, float32 and float64"""
    check_values(student, "relu", random_inputs(5) + [extremes(d) for d in DTYPES], HINTS["relu"])


@points(1)
def test_relu_gradient_matches_autograd(student):
    """the gradient through relu is 1 for x > 0 and 0 for x < 0"""
    check_gradients(student, "relu", random_inputs(6, away_from_zero=1e-3)[::3], 16,
                    "The gradient must flow through x itself where x > 0 (e.g. torch.where(x > 0, x, 0)).")


@points(1)
def test_relu_does_not_modify_its_input(student):
    """relu returns a new tensor and leaves its input unchanged"""
    g = torch.Generator().manual_seed(7)
    for dtype in DTYPES:
        x = torch.randn(5, 6, generator=g, dtype=torch.float64).to(dtype)
        assert student.run(relu_leaves_its_input_alone, x), (
            "relu changed its input: after relu(x), the negative entries of x were 0. Assigning into x "
            "(x[x < 0] = 0) or an in-place method (x.clamp_(...)) overwrites the caller's data; build a new "
            "tensor instead, e.g. with torch.where or x.clamp(min=0).")


@points(1)
def test_relu_is_implemented_by_hand(student):
    """relu does not call torch.relu or another ready-made relu"""
    check_implemented_by_hand(student, "relu")


# --- gelu ------------------------------------------------------------------------------------------------------

@points(1)
def test_gelu_matches_the_exact_erf_form_on_many_shapes(student):
    """gelu matches the exact x * Phi(x) (torch's gelu) on many shapes, float32 and float64"""
    check_values(student, "gelu", random_inputs(8), HINTS["gelu"])


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
def test_gelu_is_implemented_by_hand(student):
    """gelu does not call torch.nn.functional.gelu or another ready-made gelu"""
    check_implemented_by_hand(student, "gelu")


# --- all four on a GPU -----------------------------------------------------------------------------------------

@gpu
@points(1)
def test_activations_keep_tensors_on_the_gpu(student):
    """sigmoid, tanh, relu and gelu return CUDA tensors for CUDA inputs, with the right values"""
    x = torch.linspace(-20, 20, 101)
    for name, (device_type, values) in student.run(activations_on_cuda, x).items():
        assert device_type == "cuda", (
            f"{name} returned a tensor on {device_type} for an input on cuda. Create new tensors with "
            "torch.zeros_like(x), or pass device=x.device, so that they live where the input does.")
        expect_close(values, REFERENCE[name](x.double()).float(), name=f"{name} on cuda")
