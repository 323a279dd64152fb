"""Hidden tests for maxpool2d and maxpool2d_backward (Chapter 4, section 5).

References: torch.nn.functional.max_pool2d (forward) and autograd through it (backward), in float64 on the trusted
side. Ties: PyTorch sends a window's gradient to its first maximum in row-major order; the tie tests use small
integers (and constant images), where almost every window has ties. Overlapping windows (stride < kernel): the
gradient of an input that is the maximum of several windows is the sum. Exact comparisons at the default
tolerances of expect_close.
"""
import itertools

import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

#: Off limits: every ready-made max (or p-norm) pooling and unpooling, unfold and fold; autograd in the backward pass.
POOL_FORBIDDEN = ([f"torch.{n}" for n in dir(torch) if "max_pool" in n]
                  + [f"torch.nn.functional.{n}" for n in dir(F)
                     if "max_pool" in n or "max_unpool" in n or "lp_pool" in n or n in ("unfold", "fold")]
                  + [f"torch.nn.{n}" for n in dir(torch.nn) if "MaxPool" in n or "MaxUnpool" in n or "LPPool" in n
                     or n in ("Unfold", "Fold")]
                  + ["torch.nn.modules.pooling", "torch.nn.modules.fold", "aten.max_pool2d_with_indices",
                     "aten.max_pool2d_with_indices_backward", "aten.im2col", "aten.col2im"])
AUTOGRAD_FORBIDDEN = ["torch.autograd", "torch.func", "torch.Tensor.backward", "torch.Tensor.requires_grad_"]
POOL_ATTRIBUTES = {"max_pool1d", "max_pool2d", "max_pool3d", "max_pool2d_with_indices", "adaptive_max_pool2d",
                   "fractional_max_pool2d", "max_unpool2d", "lp_pool2d"}
AUTOGRAD_ATTRIBUTES = {"backward", "requires_grad", "requires_grad_", "retain_grad"}

#: (shape, kernel, stride): odd sizes (the output rounds down), N = 1, C = 1, non-square images.
NON_OVERLAPPING = [((2, 3, 8, 6), 2, 2), ((1, 1, 7, 9), 2, 2), ((2, 2, 9, 7), 3, 3), ((1, 3, 5, 6), 1, 1),
                   ((2, 1, 10, 8), 2, 3), ((1, 2, 6, 6), 4, 4), ((3, 2, 6, 5), 5, 5)]
OVERLAPPING = [((2, 2, 7, 8), 3, 2), ((1, 3, 6, 6), 2, 1), ((2, 1, 9, 7), 3, 1), ((1, 2, 8, 9), 4, 3)]

BACKWARD_HINT = ("Each dout value goes to the position, in x, of its window's maximum, and nowhere else: find it "
                 "with argmax over the flattened window, turn it into a row and a column of x "
                 "(i*stride + index // kernel, j*stride + index % kernel), and add dout there.")
DEVICE_HINT = "Make index tensors (torch.arange) and the gradient on x's device: device=x.device, or x.new_zeros."


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def poolings(cases, forward, backward):
    """maxpool2d(x, **kwargs) (if forward) and maxpool2d_backward(dout, x, **kwargs) (if backward) for each case."""
    return [{"out": maxpool2d(x.clone(), **kwargs) if forward else None,
             "dx": maxpool2d_backward(dout.clone(), x.clone(), **kwargs) if backward else None}
            for x, dout, kwargs in cases]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def cases_for(configurations, seed, dtype=torch.float64, values="normal", keywords=True):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for shape, kernel, stride in configurations:
        if values == "normal":
            x = torch.randn(shape, generator=g, dtype=torch.float64)
        else:   # small integers: ties in most windows
            x = torch.randint(0, 3, shape, generator=g).to(torch.float64)
        n, c, h, w = shape
        out_shape = (n, c, (h - kernel) // stride + 1, (w - kernel) // stride + 1)
        dout = torch.randn(out_shape, generator=g, dtype=torch.float64)
        cases.append((x.to(dtype), dout.to(dtype), {"kernel": kernel, "stride": stride} if keywords else {}))
    return cases


def reference(x, dout, kwargs):
    leaf = x.detach().double().clone().requires_grad_(True)
    out = F.max_pool2d(leaf, kwargs.get("kernel", 2), kwargs.get("stride", 2))
    (out * dout.double()).sum().backward()
    return out.detach().to(x.dtype), leaf.grad.to(x.dtype)


def describe(x, kwargs):
    settings = ", ".join(f"{k} {v}" for k, v in kwargs.items()) or "default kernel and stride"
    return f"x {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}, {settings}"


def check(student, cases, forward_hint=None, backward_hint=None):
    got = student.run(poolings, cases, bool(forward_hint), bool(backward_hint))
    for (x, dout, kwargs), result in zip(cases, got):
        out, dx = reference(x, dout, kwargs)
        if forward_hint:
            expect_close(result["out"], out, name=f"maxpool2d for {describe(x, kwargs)}", hint=forward_hint)
        if backward_hint:
            expect_close(result["dx"], dx, name=f"maxpool2d_backward for {describe(x, kwargs)}", hint=backward_hint)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_maxpool2d_matches_torch(student):
    """maxpool2d matches F.max_pool2d: kernels 1-5, strides 1-5, odd sizes, float32 and float64, default arguments"""
    hint = ("out[n, c, i, j] is the largest x[n, c, i*stride + u, j*stride + v] over 0 <= u, v < kernel; "
            "H_out = (H - kernel) // stride + 1 (no padding).")
    configurations = NON_OVERLAPPING + OVERLAPPING
    check(student, cases_for(configurations, 1) + cases_for(configurations, 2, torch.float32), forward_hint=hint)
    check(student, cases_for(NON_OVERLAPPING[:2], 3, keywords=False),
          forward_hint="Without arguments, kernel and stride are both 2: keep the defaults of the signature.")


@points(1)
def test_maxpool2d_backward_matches_autograd(student):
    """maxpool2d_backward matches autograd through F.max_pool2d (non-overlapping windows, float32 and float64)"""
    check(student, cases_for(NON_OVERLAPPING, 4) + cases_for(NON_OVERLAPPING, 5, torch.float32)
          + cases_for(NON_OVERLAPPING[:2], 6, keywords=False), backward_hint=BACKWARD_HINT)


@points(1)
def test_maxpool2d_backward_sends_ties_to_the_first_maximum(student):
    """on ties, maxpool2d_backward sends the whole gradient to the first maximum of the window, as PyTorch does"""
    constant = [(torch.full((2, 2, 6, 6), 1.5, dtype=torch.float64),
                 torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64),
                 {"kernel": 2, "stride": 2})]
    check(student, cases_for(NON_OVERLAPPING, 8, values="integers") + constant,
          backward_hint="When a window's maximum occurs more than once, all of its gradient goes to the first one in "
                        "row-major order (top row first, then left to right), not to each of them and not to the "
                        "last: argmax of the flattened window gives the first.")


@points(1)
def test_maxpool2d_backward_adds_up_overlapping_windows(student):
    """with stride < kernel, an input that is the maximum of several windows gets the sum of their gradients"""
    check(student, cases_for(OVERLAPPING, 9) + cases_for(OVERLAPPING, 10, values="integers"),
          backward_hint="Where windows overlap, one input can be the maximum of several of them: add their "
                        "gradients (scatter_add_ or index_add_), do not assign (which keeps only one).")


@points(1)
@requires("test_maxpool2d_matches_torch", "test_maxpool2d_backward_matches_autograd")
def test_maxpool_uses_no_ready_made_pooling(student):
    """maxpool2d and maxpool2d_backward use no ready-made pooling, unfold or fold, and the backward no autograd"""
    x, dout, kwargs = cases_for(OVERLAPPING, 11)[0]
    for name, forbidden, attributes, args in (
            ("maxpool2d", POOL_FORBIDDEN, POOL_ATTRIBUTES, (x,)),
            ("maxpool2d_backward", POOL_FORBIDDEN + AUTOGRAD_FORBIDDEN, POOL_ATTRIBUTES | AUTOGRAD_ATTRIBUTES,
             (dout, x))):
        try:
            expect_implemented_without(student, name, forbidden, attributes=attributes, calling=(args, kwargs))
        except AssertionError as error:
            raise AssertionError(f"{error} Take the windows with Tensor.unfold (or as_strided or indexing), their "
                                 "maximum with amax and its position with argmax.") from None


@points(1)
@requires("test_maxpool2d_matches_torch", "test_maxpool2d_backward_matches_autograd")
def test_maxpool_keeps_the_device_of_its_input(student):
    """for CUDA tensors, maxpool2d and maxpool2d_backward compute on CUDA (the stand-in device without a GPU)"""
    x, dout, kwargs = cases_for(OVERLAPPING, 12, torch.float32)[0]
    expect_keeps_device(student, "maxpool2d", x, hint=DEVICE_HINT, **kwargs)
    expect_keeps_device(student, "maxpool2d_backward", dout, x, hint=DEVICE_HINT, **kwargs)
