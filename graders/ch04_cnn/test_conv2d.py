"""Hidden tests for conv2d, the vectorised convolution (Chapter 4, section 2).

Reference: torch.nn.functional.conv2d on the trusted side, in float64 (cast to the dtype under test), over a grid
of configurations: strides 1 to 3, paddings 0 to 2, square and non-square kernels and images, one channel, one
filter, a batch of one, 1x1 kernels, kernels as large as the padded image, strides that do not divide the padded
size. Tolerances: expect_close's float64 default (rtol 1e-7); float32 rtol 1e-5, atol 1e-4 (THRESHOLDS.md).
Speed: a ratio to an im2col written here with F.unfold and one matrix product (THRESHOLDS.md).
"""
import itertools

import torch
import torch.nn.functional as F

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, expect_on_device, gpu,
                              points, requires, speed_ratio)

#: float32 results are compared with atol 1e-4 (rtol 1e-5): sums of up to a few hundred float32 products
#: differ from the float64 reference by more than expect_close's float32 default atol (1e-6), even for
#: F.conv2d itself (THRESHOLDS.md).
FLOAT32 = {"rtol": 1e-5, "atol": 1e-4}

#: Off limits in every convolution of the chapter: ready-made convolutions, their gradients, unfold and fold.
CONV_FORBIDDEN = ([f"torch.{n}" for n in dir(torch) if "convolution" in n or n.startswith("conv")]
                  + [f"torch.nn.functional.{n}" for n in dir(F) if n.startswith("conv") or n in ("unfold", "fold")]
                  + [f"torch.nn.{n}" for n in dir(torch.nn) if "Conv" in n or n in ("Unfold", "Fold")]
                  + ["torch.nn.grad", "torch.nn.modules.conv", "torch.nn.modules.fold", "aten.convolution",
                     "aten.convolution_backward", "aten.im2col", "aten.col2im"])
CONV_ATTRIBUTES = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                   "convolution", "conv_tbc", "conv2d_input", "conv2d_weight"}

#: The speed bound: conv2d's time over the im2col reference's (THRESHOLDS.md: a vectorised answer measures 1 to 3, a
#: Python loop over output positions hundreds), and speed_ratio's settings.
SPEED_BOUND = 20
SPEED_REPEATS, SPEED_SECONDS = 3, 0.1

HINT = ("Gather every window of the padded input as one row (entries in (c, u, v) order, as w.reshape(F, -1) "
        "orders them), multiply by the flattened filters, add b and rearrange to (N, F, H_out, W_out); "
        "H_out = (H + 2*padding - KH) // stride + 1.")
DEVICE_HINT = ("Make every new tensor on x's device and in its dtype: x.new_zeros(...), or torch.zeros(..., "
               "dtype=x.dtype, device=x.device). Never on the notebook's global `device`.")


# --- scenarios and inputs: run in the student's kernel ----------------------------------------------------------

def convolutions(cases):
    """conv2d(x, w, b, **kwargs) for each case."""
    return [conv2d(x, w, b, **kwargs) for x, w, b, kwargs in cases]


def conv_speed_inputs(generator):
    """Many output positions (48 x 48 per image) and few channels: a loop over positions pays its overhead 2304
    times per image, while im2col's cost is a few operations."""
    import torch

    x = torch.randn(2, 2, 48, 48, generator=generator)
    w = torch.randn(2, 2, 3, 3, generator=generator)
    b = torch.randn(2, generator=generator)
    return (x, w, b), {"stride": 1, "padding": 1}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def grid_cases(seed, dtype=torch.float64):
    """A grid of configurations, each with random inputs."""
    g = torch.Generator().manual_seed(seed)
    shapes = [((1, 1, 7, 7), (1, 3, 3)), ((2, 3, 9, 8), (4, 3, 3)), ((3, 2, 10, 7), (5, 2, 4)),
              ((1, 4, 8, 11), (3, 5, 3)), ((2, 1, 6, 6), (2, 1, 1))]
    cases = []
    for ((N, C, H, W), (F_, KH, KW)), stride, padding in itertools.product(shapes, (1, 2, 3), (0, 1, 2)):
        x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64).to(dtype)
        w = torch.randn(F_, C, KH, KW, generator=g, dtype=torch.float64).to(dtype)
        b = torch.randn(F_, generator=g, dtype=torch.float64).to(dtype)
        cases.append((x, w, b, {"stride": stride, "padding": padding}))
    return cases


def reference(x, w, b, stride=1, padding=0):
    return F.conv2d(x.double(), w.double(), b.double(), stride=stride, padding=padding).to(x.dtype)


def reference_im2col(x, w, b, stride=1, padding=0):
    """The speed reference: F.unfold, one matrix product, the bias (what a vectorised conv2d does)."""
    N, _, H, W = x.shape
    F_, _, KH, KW = w.shape
    rows = F.unfold(x, (KH, KW), padding=padding, stride=stride)                     # (N, C*KH*KW, L)
    out = w.reshape(F_, -1) @ rows + b[:, None]
    return out.reshape(N, F_, (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1)


def describe(x, w, kwargs):
    settings = ", ".join(f"{k} {v}" for k, v in kwargs.items()) or "default stride and padding"
    return f"x {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}, w {tuple(w.shape)}, {settings}"


def check(student, cases, hint=HINT):
    for (x, w, b, kwargs), got in zip(cases, student.run(convolutions, cases)):
        tolerance = FLOAT32 if x.dtype == torch.float32 else {}
        expect_close(got, reference(x, w, b, **kwargs), name=f"conv2d for {describe(x, w, kwargs)}", hint=hint,
                     **tolerance)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_conv2d_matches_torch_in_float64(student):
    """conv2d matches F.conv2d in float64 on 45 configurations: strides 1-3, paddings 0-2, non-square, C = 1, N = 1"""
    check(student, grid_cases(1))


@points(1)
def test_conv2d_matches_torch_in_float32(student):
    """conv2d matches F.conv2d in float32 (to float32 precision) on the same grid"""
    check(student, grid_cases(2, torch.float32))


@points(1)
def test_conv2d_handles_edge_cases(student):
    """conv2d with default arguments, a kernel as large as the padded image, a stride above the kernel, large values"""
    g = torch.Generator().manual_seed(3)

    def case(x_shape, w_shape, scale=1.0, **kwargs):
        x = torch.randn(x_shape, generator=g, dtype=torch.float64) * scale
        w = torch.randn(w_shape, generator=g, dtype=torch.float64)
        return x, w, torch.randn(w_shape[0], generator=g, dtype=torch.float64), kwargs

    check(student, [case((2, 3, 6, 5), (4, 3, 2, 3)), case((1, 2, 5, 4), (3, 2, 1, 1))],
          "Without arguments, stride is 1 and padding is 0: keep the defaults of the signature.")
    check(student, [case((2, 2, 4, 3), (3, 2, 6, 5), padding=1),             # the window is the padded image
                    case((1, 1, 9, 9), (2, 1, 2, 2), stride=3),              # stride 3 > kernel 2: gaps
                    case((2, 2, 5, 7), (2, 2, 3, 3), stride=2, padding=2),   # wide border
                    case((1, 3, 6, 6), (2, 3, 3, 3), scale=1e4, padding=1)])  # large values, same relative error


@points(1)
@requires("test_conv2d_matches_torch_in_float64")
def test_conv2d_uses_no_ready_made_convolution(student):
    """conv2d (and every helper it calls) uses no ready-made convolution, unfold or fold"""
    x, w, b, kwargs = grid_cases(4)[20]
    try:
        expect_implemented_without(student, "conv2d", CONV_FORBIDDEN, attributes=CONV_ATTRIBUTES,
                                   calling=((x, w, b), kwargs))
    except AssertionError as error:
        raise AssertionError(f"{error} Gather the windows with Tensor.unfold, as_strided or indexing, and multiply "
                             "them by the filters with one matrix product.") from None


@points(1)
@requires("test_conv2d_matches_torch_in_float64")
def test_conv2d_keeps_the_device_of_its_input(student):
    """conv2d of CUDA tensors runs on CUDA and returns a CUDA tensor (checked on the stand-in device without a GPU)"""
    g = torch.Generator().manual_seed(5)
    x, w, b = torch.randn(2, 3, 7, 6, generator=g), torch.randn(4, 3, 3, 2, generator=g), torch.randn(4, generator=g)
    expect_keeps_device(student, "conv2d", x, w, b, stride=2, padding=1, hint=DEVICE_HINT)


@points(1)
@requires("test_conv2d_matches_torch_in_float64")
def test_conv2d_is_vectorised(student):
    """conv2d runs within 20x the time of an im2col reference on the CPU (no Python loop over output positions)"""
    ratio = speed_ratio(student, "conv2d", reference_im2col, conv_speed_inputs, repeats=SPEED_REPEATS,
                        min_seconds=SPEED_SECONDS)
    assert ratio < SPEED_BOUND, (
        f"conv2d took {ratio:.0f} times as long as an im2col reference (F.unfold and one matrix product) on 2 images "
        f"of 2 x 48 x 48 with 2 filters of 3 x 3 (allowed: {SPEED_BOUND} times; a vectorised conv2d takes about 1 to "
        "3 times). A Python loop over the output positions runs thousands of small operations: gather all windows "
        "at once (Tensor.unfold on the height, then on the width) and use one matrix product.")


@gpu
@points(1)
@requires("test_conv2d_matches_torch_in_float64")
def test_conv2d_runs_on_cuda(student, device):
    """for CUDA tensors, conv2d returns the right values on CUDA (and, on a real GPU, runs within 20x the reference)"""
    g = torch.Generator().manual_seed(6)
    x, w, b = torch.randn(3, 4, 12, 10, generator=g), torch.randn(5, 4, 3, 3, generator=g), torch.randn(5, generator=g)
    got = student.on(device).conv2d(x, w, b, stride=2, padding=1)
    expect_on_device(got, device, reference(x.double(), w.double(), b.double(), stride=2, padding=1).float(),
                     rtol=1e-4, atol=1e-4, name="conv2d of CUDA tensors", hint=DEVICE_HINT)
    if torch.cuda.is_available():
        ratio = speed_ratio(student, "conv2d", reference_im2col, conv_speed_inputs, device=device,
                            repeats=SPEED_REPEATS, min_seconds=SPEED_SECONDS)
        assert ratio < SPEED_BOUND, (
            f"on the GPU, conv2d took {ratio:.0f} times as long as an im2col reference (allowed: {SPEED_BOUND}). "
            "Gather all windows at once and use one matrix product; avoid Python loops and .item() calls.")
