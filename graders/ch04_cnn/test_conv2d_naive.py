"""Hidden tests for conv2d_naive (Chapter 4, section 1).

Reference: torch.nn.functional.conv2d, here on the trusted side, in float64 (cast to the dtype under test). The
inputs are small (the function loops in Python), but cover what the contract allows: strides 1 to 3, paddings 0
to 2, non-square images and kernels, one channel, one filter, a batch of one, a 1x1 kernel, a kernel as large as
the padded image, and strides that do not divide the padded size (the output size rounds down). Tolerances:
expect_close's float64 default (rtol 1e-7); float32 rtol 1e-5, atol 1e-4 (THRESHOLDS.md).
"""
import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

#: float32 results are compared with atol 1e-4 (rtol 1e-5): sums of up to a few hundred float32 products
#: differ from the float64 reference by more than expect_close's float32 default atol (1e-6), even for
#: F.conv2d itself (THRESHOLDS.md).
FLOAT32 = {"rtol": 1e-5, "atol": 1e-4}

#: (N, C, H, W), (F, KH, KW), stride, padding: each at most a few thousand multiply-adds for a loop to run.
CASES = [((1, 1, 5, 5), (1, 3, 3), 1, 0),   # batch of one, one channel, one filter
         ((2, 3, 6, 5), (2, 3, 3), 1, 1),
         ((1, 2, 7, 6), (3, 2, 4), 2, 0),   # non-square kernel, stride 2
         ((2, 1, 7, 7), (2, 3, 3), 3, 2),   # stride 3, padding 2
         ((1, 2, 5, 8), (2, 1, 1), 2, 1),   # 1x1 kernel: the padded border gives the bias alone
         ((2, 2, 4, 4), (2, 4, 4), 1, 0),   # kernel as large as the image: a 1x1 output
         ((1, 1, 8, 3), (2, 5, 1), 3, 1),   # stride that does not divide H + 2P - KH: rounds down
         ((1, 3, 3, 4), (2, 2, 3), 1, 2)]   # padding larger than the kernel's overhang

#: Off limits in every convolution of the chapter: ready-made convolutions, their gradients, unfold and fold.
CONV_FORBIDDEN = ([f"torch.{n}" for n in dir(torch) if "convolution" in n or n.startswith("conv")]
                  + [f"torch.nn.functional.{n}" for n in dir(F) if n.startswith("conv") or n in ("unfold", "fold")]
                  + [f"torch.nn.{n}" for n in dir(torch.nn) if "Conv" in n or n in ("Unfold", "Fold")]
                  + ["torch.nn.grad", "torch.nn.modules.conv", "torch.nn.modules.fold", "aten.convolution",
                     "aten.convolution_backward", "aten.im2col", "aten.col2im"])
CONV_ATTRIBUTES = {"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                   "convolution", "conv_tbc", "conv2d_input", "conv2d_weight"}

HINT = ("Pad x with zeros first (padding rows and columns on every side), then out[n, f, i, j] = b[f] + the sum of "
        "(window * w[f]) for the window padded[n, :, i*stride : i*stride + KH, j*stride : j*stride + KW]; "
        "H_out = (H + 2*padding - KH) // stride + 1. No flipping of the filter: this is F.conv2d's cross-correlation.")


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def convolutions(name, cases):
    """name(x, w, b, **kwargs) for each case."""
    function = globals()[name]
    return [function(x, w, b, **kwargs) for x, w, b, kwargs in cases]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_cases(seed, dtype=torch.float64, keywords=True):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for (N, C, H, W), (F_, KH, KW), stride, padding in CASES:
        x = torch.randn(N, C, H, W, generator=g, dtype=torch.float64).to(dtype)
        w = torch.randn(F_, C, KH, KW, generator=g, dtype=torch.float64).to(dtype)
        b = torch.randn(F_, generator=g, dtype=torch.float64).to(dtype)
        cases.append((x, w, b, {"stride": stride, "padding": padding} if keywords else {}))
    return cases


def reference(x, w, b, stride=1, padding=0):
    return F.conv2d(x.double(), w.double(), b.double(), stride=stride, padding=padding).to(x.dtype)


def describe(x, w, kwargs):
    settings = ", ".join(f"{k} {v}" for k, v in kwargs.items()) or "default stride and padding"
    return f"x {tuple(x.shape)} {str(x.dtype).removeprefix('torch.')}, w {tuple(w.shape)}, {settings}"


def check(student, cases, hint=HINT):
    for (x, w, b, kwargs), got in zip(cases, student.run(convolutions, "conv2d_naive", cases)):
        tolerance = FLOAT32 if x.dtype == torch.float32 else {}
        expect_close(got, reference(x, w, b, **kwargs), name=f"conv2d_naive for {describe(x, w, kwargs)}", hint=hint,
                     **tolerance)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_conv2d_naive_matches_torch_in_float64(student):
    """conv2d_naive matches F.conv2d in float64: strides 1-3, paddings 0-2, non-square kernels, one channel, N = 1"""
    check(student, random_cases(1))


@points(1)
def test_conv2d_naive_matches_torch_in_float32_and_with_defaults(student):
    """conv2d_naive matches F.conv2d in float32, and uses stride 1 and padding 0 when they are not given"""
    check(student, random_cases(2, torch.float32))
    defaults = [case for case in random_cases(3, keywords=False) if case[0].shape[-1] >= case[1].shape[-1]
                and case[0].shape[-2] >= case[1].shape[-2]]
    check(student, defaults, "Without arguments, stride is 1 and padding is 0: keep the defaults of the signature.")


@points(1)
@requires("test_conv2d_naive_matches_torch_in_float64")
def test_conv2d_naive_uses_no_ready_made_convolution(student):
    """conv2d_naive (and every helper it calls) uses no ready-made convolution, unfold or fold"""
    x, w, b, kwargs = random_cases(4)[1]
    try:
        expect_implemented_without(student, "conv2d_naive", CONV_FORBIDDEN, attributes=CONV_ATTRIBUTES,
                                   calling=((x, w, b), kwargs))
    except AssertionError as error:
        raise AssertionError(f"{error} Loop over the output positions and multiply each window by the filter "
                             "yourself.") from None


@points(1)
@requires("test_conv2d_naive_matches_torch_in_float64")
def test_conv2d_naive_keeps_the_device_of_its_input(student):
    """conv2d_naive of CUDA tensors computes on CUDA and returns a CUDA tensor (the stand-in device without a GPU)"""
    g = torch.Generator().manual_seed(5)
    x, w, b = torch.randn(1, 2, 5, 4, generator=g), torch.randn(2, 2, 3, 2, generator=g), torch.randn(2, generator=g)
    expect_keeps_device(student, "conv2d_naive", x, w, b, stride=2, padding=1,
                        hint="Make the padded input and the output on x's device and in its dtype: x.new_zeros(...), "
                             "or torch.zeros(..., dtype=x.dtype, device=x.device).")
