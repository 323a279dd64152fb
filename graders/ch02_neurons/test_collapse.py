"""Hidden tests for collapse_linear (Chapter 2, section 4).

The reference never multiplies the matrices: it runs the stack of layers itself, in float64, on the zero
vector (which gives the collapsed bias) and on the identity matrix (whose rows, less the bias, give the
collapsed weight's columns).
"""
import torch

from dlvision.grading import expect_close, expect_keeps_device, points, requires

ORDER_HINT = ("The first layer is applied first, so its matrix ends up on the right: W = W_k @ ... @ W_2 @ W_1 "
              "(each new layer multiplies from the left).")
BIAS_HINT = ("Each earlier bias passes through every later layer: after layer k the bias is W_k @ b + b_k, "
             "not just the sum of the biases.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def collapse(layers):
    """collapse_linear on a list of (W, b) pairs (sent as lists, rebuilt as tuples)."""
    return collapse_linear([(w, b) for w, b in layers])


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_stack(sizes, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n_out, n_in, generator=g, dtype=torch.float64).to(dtype),
             torch.randn(n_out, generator=g, dtype=torch.float64).to(dtype))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])]


def run_stack(layers, x):
    for w, b in layers:
        x = x @ w.T + b
    return x


def reference(layers):
    layers64 = [(w.double(), b.double()) for w, b in layers]
    n_in = layers64[0][0].shape[1]
    bias = run_stack(layers64, torch.zeros(1, n_in, dtype=torch.float64))[0]
    weight = (run_stack(layers64, torch.eye(n_in, dtype=torch.float64)) - bias).T
    return weight, bias


def collapsed(student, layers, sizes):
    result = student.run(collapse, layers)
    assert isinstance(result, (tuple, list)) and len(result) == 2, (
        f"collapse_linear should return a pair (W, b), got {type(result).__name__}"
        + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "") + f" for sizes {sizes}.")
    return result


def describe(sizes, dtype):
    return f"layers of sizes {' -> '.join(map(str, sizes))}, {str(dtype).removeprefix('torch.')}"


STACKS = [[3, 3, 3], [2, 5, 3], [4, 6, 1, 5, 2], [1, 7, 7, 1], [6, 6, 6, 6, 6]]


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_collapse_linear_weight_equals_the_stack(student):
    """the collapsed W is the product of the layers' matrices, last layer on the left"""
    for k, sizes in enumerate(STACKS):
        for dtype in (torch.float32, torch.float64):
            layers = random_stack(sizes, dtype, 10 + k)
            w, _ = collapsed(student, layers, sizes)
            expected_w, _ = reference(layers)
            tol = 1e-5 if dtype == torch.float32 else None  # float32: see THRESHOLDS.md; float64: the default
            expect_close(w, expected_w.to(dtype), rtol=tol, atol=tol, name=f"W for {describe(sizes, dtype)}",
                         hint=ORDER_HINT)
    # The docstring's "same dtype and device as the inputs", on a GPU or the stand-in: it can only fail this test.
    expect_keeps_device(student, "collapse_linear", random_stack([4, 6, 1, 5, 2], torch.float32, 30), hint=(
        "collapse_linear must work on any device and return W and b on the device of the layers: start from the "
        "first layer's (W, b) rather than from a new torch.eye(...) / torch.zeros(...), or make those with "
        "device=W.device and dtype=W.dtype."))


@points(1)
def test_collapse_linear_bias_equals_the_stack(student):
    """the collapsed b is what the stack outputs for x = 0"""
    for k, sizes in enumerate(STACKS):
        for dtype in (torch.float32, torch.float64):
            layers = random_stack(sizes, dtype, 20 + k)
            _, b = collapsed(student, layers, sizes)
            _, expected_b = reference(layers)
            tol = 1e-5 if dtype == torch.float32 else None  # float32: see THRESHOLDS.md; float64: the default
            expect_close(b, expected_b.to(dtype), rtol=tol, atol=tol, name=f"b for {describe(sizes, dtype)}",
                         hint=BIAS_HINT)


@points(1)
@requires("test_collapse_linear_weight_equals_the_stack", "test_collapse_linear_bias_equals_the_stack")
def test_collapse_linear_of_one_layer_is_that_layer(student):
    """collapse_linear of a single layer returns that layer's W and b"""
    for dtype in (torch.float32, torch.float64):
        layers = random_stack([5, 3], dtype, 1)
        w, b = collapsed(student, layers, [5, 3])
        expect_close(w, layers[0][0], name=f"W for a single layer 5 -> 3, {str(dtype).removeprefix('torch.')}")
        expect_close(b, layers[0][1], name=f"b for a single layer 5 -> 3, {str(dtype).removeprefix('torch.')}")
