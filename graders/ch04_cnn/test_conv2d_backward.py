"""Hidden tests for conv2d_backward (Chapter 4, section 4).

Reference: autograd through torch.nn.functional.conv2d in float64, on the trusted side, with a random upstream
gradient: dx, dw and db compared at expect_close's float64 default (rtol 1e-7); in float32, against the float64
reference cast down, with rtol 1e-5 and atol 1e-4 (THRESHOLDS.md). The configurations cover strides 1 to 3 (with input
rows and columns no window reaches, whose gradient is zero), paddings 0 to 2, non-square kernels, one channel,
one filter and a batch of one.
"""
import itertools

import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

#: float32 results are compared with atol 1e-4 (rtol 1e-5): sums of up to a few hundred float32 products
#: differ from the float64 reference by more than expect_close's float32 default atol (1e-6), even for
#: F.conv2d itself (THRESHOLDS.md).
FLOAT32 = {"rtol": 1e-5, "atol": 1e-4}

#: Off limits: ready-made convolutions and their gradients, unfold and fold, and autograd in any form.
CONV_FORBIDDEN = ([f"torch.{n}" for n in dir(torch) if "convolution" in n or n.startswith("conv")]
                  + [f"torch.nn.functional.{n}" for n in dir(F) if n.startswith("conv") or n in ("unfold", "fold")]
                  + [f"torch.nn.{n}" for n in dir(torch.nn) if "Conv" in n or n in ("Unfold", "Fold")]
                  + ["torch.nn.grad", "torch.nn.modules.conv", "torch.nn.modules.fold", "aten.convolution",
                     "aten.convolution_backward", "aten.im2col", "aten.col2im"])
FORBIDDEN = CONV_FORBIDDEN + ["torch.autograd", "torch.func", "torch.Tensor.backward", "torch.Tensor.requires_grad_"]
ATTRIBUTES = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "convolution", "conv_tbc", "conv2d_input", "conv2d_weight", "backward", "requires_grad",
              "requires_grad_", "retain_grad"}

HINTS = {
    "dx": "dx: for every window, (dout at that position) times the filters gives the window's gradient; add each entry "
          "back to the input position it came from (where windows overlap, contributions add up), then cut the "
          "padding off. Positions no window reaches get 0.",
    "dw": "dw[f, c, u, v] = sum over n, i, j of dout[n, f, i, j] * x_padded[n, c, i*stride + u, j*stride + v]: "
          "dout (as an (N*H_out*W_out, F) matrix) transposed, times the im2col matrix.",
    "db": "db[f] = sum of dout[:, f] over the batch and both spatial dimensions.",
}
DEVICE_HINT = ("Make every new tensor (the padded gradient, index tensors) on x's device: x.new_zeros(...), or "
               "device=x.device.")


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def backward_passes(cases):
    """conv2d_backward(dout, (x, w, b, stride, padding)) for each case."""
    return [conv2d_backward(dout, (x, w, b, stride, padding)) for x, w, b, stride, padding, dout in cases]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def output_size(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def random_cases(seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    shapes = [((1, 1, 6, 6), (1, 3, 3)), ((2, 3, 7, 8), (4, 3, 3)), ((3, 2, 9, 7), (2, 2, 4)),
              ((1, 4, 8, 10), (3, 5, 3)), ((2, 2, 5, 5), (3, 1, 1))]
    cases = []
    for ((N, C, H, W), (F_, KH, KW)), stride, padding in itertools.product(shapes, (1, 2, 3), (0, 1, 2)):
        x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
        w = torch.randn(F_, C, KH, KW, generator=g, dtype=torch.float64)
        b = torch.randn(F_, generator=g, dtype=torch.float64)
        dout = torch.randn(N, F_, output_size(H, KH, stride, padding), output_size(W, KW, stride, padding),
                           generator=g, dtype=torch.float64)
        cases.append(tuple(t.to(dtype) for t in (x, w, b)) + (stride, padding, dout.to(dtype)))
    return cases


def reference(x, w, b, stride, padding, dout):
    leaves = [t.detach().double().clone().requires_grad_(True) for t in (x, w, b)]
    (F.conv2d(*leaves, stride=stride, padding=padding) * dout.double()).sum().backward()
    return {name: leaf.grad.to(x.dtype) for name, leaf in zip(("dx", "dw", "db"), leaves)}


def results(student, cases):
    got = student.run(backward_passes, cases)
    for (x, w, *_), result in zip(cases, got):
        assert isinstance(result, (tuple, list)) and len(result) == 3, (
            f"conv2d_backward should return a tuple (dx, dw, db) for x {tuple(x.shape)}, w {tuple(w.shape)}; got "
            + (f"{len(result)} values." if isinstance(result, (tuple, list)) else f"a {type(result).__name__}."))
    return got


def check(student, cases, names):
    for case, got in zip(cases, results(student, cases)):
        x, w, b, stride, padding, dout = case
        expected = reference(*case)
        where = (f"x {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}, w {tuple(w.shape)}, stride {stride}, "
                 f"padding {padding}")
        for name in names:
            expect_close(got[("dx", "dw", "db").index(name)], expected[name], name=f"{name} for {where}",
                         hint=HINTS[name], **(FLOAT32 if x.dtype == torch.float32 else {}))


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_conv2d_backward_dx_matches_autograd(student):
    """dx matches autograd through F.conv2d in float64 on 45 configurations (strides 1-3, paddings 0-2, N = 1, C = 1)"""
    check(student, random_cases(1), ["dx"])


@points(1)
def test_conv2d_backward_dw_and_db_match_autograd(student):
    """dw and db match autograd through F.conv2d in float64 on the same configurations"""
    check(student, random_cases(2), ["dw", "db"])


@points(1)
def test_conv2d_backward_matches_autograd_in_float32(student):
    """dx, dw and db match autograd in float32, in the dtype of the input"""
    check(student, random_cases(3, torch.float32)[::3], ["dx", "dw", "db"])


@points(1)
@requires("test_conv2d_backward_dx_matches_autograd", "test_conv2d_backward_dw_and_db_match_autograd")
def test_conv2d_backward_is_implemented_by_hand(student):
    """conv2d_backward uses no autograd, no ready-made convolution or its gradient, no unfold or fold"""
    x, w, b, stride, padding, dout = random_cases(4)[22]
    try:
        expect_implemented_without(student, "conv2d_backward", FORBIDDEN, attributes=ATTRIBUTES,
                                   calling=((dout, (x, w, b, stride, padding)), {}))
    except AssertionError as error:
        raise AssertionError(f"{error} Derive the three gradients with matrix products and add the windows' "
                             "gradients back by hand (a loop over the kernel offsets is fine).") from None


@points(1)
@requires("test_conv2d_backward_dx_matches_autograd", "test_conv2d_backward_dw_and_db_match_autograd")
def test_conv2d_backward_keeps_the_device_of_its_input(student):
    """for CUDA tensors, dx, dw and db are computed on CUDA (checked on the stand-in device without a GPU)"""
    x, w, b, stride, padding, dout = [t.float() if isinstance(t, torch.Tensor) else t for t in random_cases(5)[13]]
    expect_keeps_device(student, "conv2d_backward", dout, (x, w, b, stride, padding), hint=DEVICE_HINT)
