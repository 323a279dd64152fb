"""Hidden tests for softmax and log_softmax (Chapter 2, section 2).

References are torch.softmax / torch.log_softmax in float64 (values) and autograd through them in float64
(gradients), cast to the dtype under test. The speed bound is explained in THRESHOLDS.md.
"""
import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, points, requires,
                              speed_ratio)

REFERENCE = {"softmax": torch.softmax, "log_softmax": torch.log_softmax}

#: (shape, dim): vectors, a batch of one, single-class slices, odd sizes, and every dim of 3-D and 4-D tensors.
CASES = [((5,), -1), ((1,), 0), ((1, 1), -1), ((1, 10), -1), ((4, 7), -1), ((4, 7), 0), ((4, 7), 1),
         ((3, 4, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), -1), ((2, 3, 4, 5), 2), ((64, 33), -1)]

DTYPES = (torch.float32, torch.float64)

#: Logits whose exponentials overflow or underflow in both float32 and float64.
LARGE = [[1000.0, 1001.0, 1002.0], [-1e4, 0.0, 1e4], [1e4, 1e4, 1e4], [-1e4, -1e4, -9999.0], [0.0, 1000.0, -5.0]]

#: The docstrings' "Off limits", as full dotted paths for expect_implemented_without (torch.nn: its functional
#: module and the Softmax / LogSoftmax layers), and attribute names that catch the method forms (x.softmax()).
FORBIDDEN_DOTTED = ["torch.softmax", "torch.log_softmax", "torch.logsumexp", "torch.special.softmax",
                    "torch.special.log_softmax", "torch.special.logsumexp", "torch.nn"]
FORBIDDEN_ATTRIBUTES = {"softmax", "log_softmax", "logsumexp", "softmin", "_softmax", "_log_softmax"}

SHIFT_HINT = ("Subtract each slice's own maximum, x.amax(dim=dim, keepdim=True), before exponentiating: "
              "then the largest exponent is exp(0) = 1 and nothing overflows. If the values are finite but a "
              "little off, keep the numbers you exponentiate small: x - (m + log(sum)) rounds at the size of "
              "the logits (1e4 in float32 has steps of 0.001), so form x - m first.")
LOGSUMEXP_HINT = ("log(softmax(x)) is -inf where a probability underflows to 0. Compute "
                  "x - m - log(sum(exp(x - m))) with m = x.amax(dim=dim, keepdim=True) instead.")
DIM_HINT = ("Reduce along `dim` only, with keepdim=True (x.amax(dim=dim, keepdim=True), "
            "e.sum(dim=dim, keepdim=True)) so that the result broadcasts back against x.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def call_each(name, cases):
    """The student's function `name` on each (x, dim)."""
    f = globals()[name]
    return [f(x, dim=dim) for x, dim in cases]


def gradient_of(name, x, dim, upstream):
    """d/dx of sum(f(x, dim) * upstream) by autograd through the student's f; None if the graph is cut."""
    import torch

    x = x.clone().requires_grad_(True)
    y = globals()[name](x, dim=dim)
    if not isinstance(y, torch.Tensor) or not y.requires_grad:
        return None
    (y * upstream).sum().backward()
    return x.grad


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_cases(seed, scale=5.0):
    g = torch.Generator().manual_seed(seed)
    return [((torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype), dim)
            for dtype in DTYPES for shape, dim in CASES]


def describe(x, dim):
    return f"x of shape {tuple(x.shape)}, {str(x.dtype).removeprefix('torch.')}, dim={dim}"


def check_values(student, name, cases, hint):
    got = student.run(call_each, name, cases)
    for (x, dim), y in zip(cases, got):
        expected = REFERENCE[name](x.double(), dim=dim).to(x.dtype)
        expect_close(y, expected, name=f"{name}(x, dim={dim}), {describe(x, dim)}", hint=hint)


def check_gradients(student, name, cases, seed, hint):
    g = torch.Generator().manual_seed(seed)
    for x, dim in cases:
        upstream = torch.randn(x.shape, generator=g, dtype=torch.float64).to(x.dtype)
        grad = student.run(gradient_of, name, x, dim, upstream)
        assert grad is not None, (
            f"{name}(x) is not connected to x in the autograd graph, so no gradient reaches x "
            f"({describe(x, dim)}). Use torch operations only: no .detach(), .item(), .numpy() or torch.tensor(...).")
        x64 = x.double().requires_grad_(True)
        (REFERENCE[name](x64, dim=dim) * upstream.double()).sum().backward()
        expect_close(grad, x64.grad.to(x.dtype), name=f"the gradient of {name}, {describe(x, dim)}", hint=hint)


def check_default_dim(student, name):
    """Called without dim, the function normalises along the last dimension (the signature's dim=-1)."""
    x = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    expect_close(getattr(student, name)(x), REFERENCE[name](x, dim=-1),
                 name=f"{name}(x) without dim, x of shape (2, 3, 4), float64",
                 hint=f"The signature is {name}(x, dim=-1): without dim, normalise along the last dimension.")


def check_implemented_by_hand(student, name):
    """Static (through helpers, aliases, imports) and at run time. Tests that call this are marked
    @requires(<the function's value test>): a hollow function uses nothing forbidden either."""
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expect_implemented_without(student, name, FORBIDDEN_DOTTED, attributes=FORBIDDEN_ATTRIBUTES,
                               calling=((x,), {"dim": -1}))


def check_device(student, name):
    """The docstring's "same shape, dtype and device", on a GPU or the stand-in device. Kernel evidence: it can only
    fail the value test it ends, never earn a point of its own."""
    x = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(13))
    for dim in (-1, 0):
        expect_keeps_device(student, name, x, dim=dim, hint=(
            f"{name} must work on any device and return its result on the device of x: build it from x with "
            "tensor operations (amax, exp, sum, log along dim). A tensor made with torch.zeros(...) or "
            "torch.tensor(...) lives on the CPU unless you pass device=x.device, and the notebook's global "
            "`device` is not the device of x."))


def softmax_speed_inputs(generator):
    """The speed test's inputs: 1000 slices of 30 logits. Runs in the grading kernel and here (imports its own)."""
    import torch

    return (torch.randn(1000, 30, generator=generator) * 5,), {"dim": -1}


def large_cases():
    cases = []
    for dtype in DTYPES:
        x = torch.tensor(LARGE, dtype=dtype)
        cases += [(x, -1), (x.T.contiguous(), 0)]
    return cases


# --- softmax ---------------------------------------------------------------------------------------------------

@points(1)
def test_softmax_matches_torch_on_many_shapes_and_dims(student):
    """softmax matches torch.softmax on 1-D to 4-D tensors along every dim, float32 and float64"""
    check_values(student, "softmax", random_cases(1), DIM_HINT)
    check_default_dim(student, "softmax")
    check_device(student, "softmax")


@points(1)
def test_softmax_is_stable_for_large_logits(student):
    """softmax gives finite, correct probabilities for logits up to 1e4 in size"""
    check_values(student, "softmax", large_cases(), SHIFT_HINT)


@points(1)
def test_softmax_is_stable_when_rows_have_very_different_scales(student):
    """softmax shifts each slice by its own maximum, not by one maximum for the whole tensor"""
    g = torch.Generator().manual_seed(3)
    offsets = torch.tensor([[0.0], [2000.0], [-2000.0], [5000.0]], dtype=torch.float64)
    cases = []
    for dtype in DTYPES:
        x = (torch.randn(4, 6, generator=g, dtype=torch.float64) * 3 + offsets).to(dtype)
        cases += [(x, -1), (x.T.contiguous(), 0)]
    check_values(student, "softmax", cases,
                 "A slice far below the global maximum underflows to 0 / 0 = nan: subtract each slice's own "
                 "maximum, x.amax(dim=dim, keepdim=True), not x.max() of the whole tensor.")


@points(1)
def test_softmax_gradient_matches_autograd(student):
    """the gradient through softmax matches autograd through torch.softmax"""
    check_gradients(student, "softmax", random_cases(2, scale=2.0)[::4], 12, DIM_HINT)


@points(1)
@requires("test_softmax_matches_torch_on_many_shapes_and_dims")
def test_softmax_is_implemented_by_hand(student):
    """softmax does not call torch.softmax, logsumexp or another ready-made softmax"""
    check_implemented_by_hand(student, "softmax")


#: The speed test's bound (see THRESHOLDS.md); its input is softmax_speed_inputs: 1000 short slices, so that a Python
#: loop over them pays the per-operation overhead a thousand times.
SPEED_BOUND = 20


@points(1)
@requires("test_softmax_matches_torch_on_many_shapes_and_dims")
def test_softmax_is_vectorised(student):
    """softmax on 1000 slices of 30 logits runs within 20x the time of torch.softmax (no Python loop over slices)"""
    ratio = speed_ratio(student, "softmax", torch.softmax, softmax_speed_inputs)
    assert ratio < SPEED_BOUND, (
        f"softmax took {ratio:.0f} times as long as torch.softmax on a batch of 1000 slices of 30 logits "
        f"(allowed: {SPEED_BOUND} times; a vectorised softmax takes about 2 to 6 times). A Python loop over the "
        "rows (or the elements) runs one small operation at a time; work on the whole tensor at once with amax, "
        "exp and sum along dim.")


# --- log_softmax -----------------------------------------------------------------------------------------------

@points(1)
def test_log_softmax_matches_torch_on_many_shapes_and_dims(student):
    """log_softmax matches torch.log_softmax on 1-D to 4-D tensors along every dim, float32 and float64"""
    check_values(student, "log_softmax", random_cases(5), DIM_HINT)
    check_default_dim(student, "log_softmax")
    check_device(student, "log_softmax")


@points(1)
def test_log_softmax_is_stable_for_large_logits(student):
    """log_softmax gives finite, correct values where probabilities underflow (logits up to 1e4)"""
    check_values(student, "log_softmax", large_cases(), LOGSUMEXP_HINT)


@points(1)
def test_log_softmax_gradient_matches_autograd(student):
    """the gradient through log_softmax matches autograd through torch.log_softmax"""
    check_gradients(student, "log_softmax", random_cases(6, scale=2.0)[::4], 16, DIM_HINT)


@points(1)
@requires("test_log_softmax_matches_torch_on_many_shapes_and_dims")
def test_log_softmax_is_implemented_by_hand(student):
    """log_softmax does not call torch.log_softmax, logsumexp or another ready-made version"""
    check_implemented_by_hand(student, "log_softmax")
