"""Hidden tests for image_gradients (Chapter 0, section 1).

The reference is torch.nn.functional.conv2d (a cross-correlation) with the Sobel kernels and padding=1, in
float64, cast to the dtype under test. float32 cases use whole-number images (0..255, like 8-bit scans), on
which every Sobel sum is exact in float32, so the default tolerances apply unchanged.
"""
import torch
import torch.nn.functional as F

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, expect_on_device, gpu,
                              points, requires)

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
SOBEL_Y = SOBEL_X.T.contiguous()

#: (N, H, W): a single pixel, a batch of one, odd and non-square sizes, single rows and columns.
SHAPES = [(1, 1, 1), (1, 5, 5), (2, 7, 9), (3, 16, 16), (1, 1, 6), (2, 6, 1), (4, 8, 3), (1, 2, 2)]

#: Ready-made convolutions, paddings and filters, as full dotted paths (everything under torch.nn: F.conv2d, F.pad,
#: nn.Conv2d). scipy, OpenCV and scikit-image cannot be imported by graded code at all (see analysis.py).
FORBIDDEN = ["torch.nn", "torch.conv1d", "torch.conv2d", "torch.conv3d", "torch.conv_tbc", "torch.convolution",
             "torch.conv_transpose1d", "torch.conv_transpose2d", "torch.conv_transpose3d", "torch.constant_pad_nd",
             "torch.cudnn_convolution", "torch.mkldnn_convolution", "torchvision", "numpy.convolve", "numpy.correlate",
             "numpy.pad"]
#: The same things as attribute names on any object (x.conv2d, a module alias's .pad, np.convolve).
FORBIDDEN_ATTRIBUTES = {"conv1d", "conv2d", "conv3d", "conv_tbc", "convolution", "conv_transpose1d", "conv_transpose2d",
                        "conv_transpose3d", "constant_pad_nd", "pad", "convolve", "correlate"}

SHAPE_HINT = ("Return a pair (gx, gy) of tensors of shape (N, H, W), the shape of the input: pad with one "
              "pixel of zeros on every side, then take (N, H, W) slices of the padded batch.")
CONVENTION_HINT = ("gx = (right column) - (left column) and gy = (row below) - (row above), each with the "
                   "weights 1, 2, 1 across the difference and no division by 8. A sign flip means the kernel "
                   "was flipped (a true convolution, not F.conv2d's cross-correlation); gx and gy exchanged "
                   "means the kernels were transposed.")
DEVICE_HINT = ("image_gradients must work on any device and return gx and gy on the device of `images`: create the "
               "padded tensor with torch.zeros(..., dtype=images.dtype, device=images.device) (not on the CPU, and "
               "not on the notebook's global `device`), so that everything stays where the input is.")
BORDER_HINT = ("Pixels outside the image count as 0: build a zero tensor of shape (N, H + 2, W + 2), copy the "
               "image into its middle, and take the neighbours from there (not by repeating the edge pixels "
               "and not by wrapping around with torch.roll).")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def gradients_of_each(batches):
    """image_gradients of each batch, in one round trip."""
    return [image_gradients(images) for images in batches]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(images):
    """Sobel (gx, gy) by F.conv2d in float64, zero padding 1, cast back to the input's dtype."""
    x = images.double()[:, None]
    gx = F.conv2d(x, SOBEL_X[None, None], padding=1)[:, 0]
    gy = F.conv2d(x, SOBEL_Y[None, None], padding=1)[:, 0]
    return gx.to(images.dtype), gy.to(images.dtype)


def describe(images):
    return f"images of shape {tuple(images.shape)}, {str(images.dtype).removeprefix('torch.')}"


def gradients_of(student, batches):
    """The student's (gx, gy) for each batch, checked to be pairs."""
    results = student.run(gradients_of_each, batches)
    for images, result in zip(batches, results):
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"image_gradients should return a pair (gx, gy), got {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
            + f" for {describe(images)}.")
    return results


def check_against_reference(student, cases, hint):
    for images, (gx, gy) in zip(cases, gradients_of(student, cases)):
        ref_x, ref_y = reference(images)
        expect_close(gx, ref_x, name=f"gx for {describe(images)}", hint=hint)
        expect_close(gy, ref_y, name=f"gy for {describe(images)}", hint=hint)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_image_gradients_match_sobel_in_float64(student):
    """gx and gy match the Sobel filters (F.conv2d, padding 1) on many sizes, batch of one and non-square, float64"""
    g = torch.Generator().manual_seed(1)
    cases = [torch.randn(shape, generator=g, dtype=torch.float64) * 3 for shape in SHAPES]
    check_against_reference(student, cases, SHAPE_HINT + " " + CONVENTION_HINT)
    # The device contract ("any device"), on a GPU or the stand-in: it can only fail this test, never earn points.
    expect_keeps_device(student, "image_gradients", cases[2], hint=DEVICE_HINT)


@points(1)
def test_image_gradients_are_exact_on_whole_number_float32_images(student):
    """on float32 images of whole numbers 0..255 (8-bit scans), gx and gy are exact and stay float32"""
    g = torch.Generator().manual_seed(2)
    cases = [torch.randint(0, 256, shape, generator=g).to(torch.float32) for shape in SHAPES]
    check_against_reference(student, cases,
                            "Keep the input's dtype: create the padded tensor with dtype=images.dtype and "
                            "device=images.device. " + CONVENTION_HINT)


@points(1)
def test_image_gradients_point_towards_brighter_pixels(student):
    """inside a ramp brightening to the right gx = 8, gy = 0; inside one brightening downwards gy = 8, gx = 0"""
    ys, xs = torch.meshgrid(torch.arange(6.0, dtype=torch.float64), torch.arange(7.0, dtype=torch.float64),
                            indexing="ij")
    ramps = ((xs[None], 8.0, 0.0, "brightens from left to right"),
             (ys[None], 0.0, 8.0, "brightens from top to bottom"),
             (-xs[None], -8.0, 0.0, "darkens from left to right"))
    results = gradients_of(student, [images for images, *_ in ramps])
    for (images, expected_x, expected_y, what), (gx, gy) in zip(ramps, results):
        interior = (slice(None), slice(1, -1), slice(1, -1))
        assert isinstance(gx, torch.Tensor) and isinstance(gy, torch.Tensor) and gx.shape == images.shape \
            and gy.shape == images.shape, f"expected gx and gy of shape {tuple(images.shape)}. " + SHAPE_HINT
        for got, value, label in ((gx, expected_x, "gx"), (gy, expected_y, "gy")):
            expect_close(got[interior], torch.full_like(images[interior], value),
                         name=f"{label} inside a ramp that {what} by 1 per pixel", hint=CONVENTION_HINT)


@points(1)
def test_image_gradients_zero_pad_the_border(student):
    """a constant image has gradients only along its border, where the outside counts as 0 (zero padding)"""
    cases = [torch.ones(1, 4, 6, dtype=torch.float64), torch.full((2, 5, 3), 2.5, dtype=torch.float64),
             torch.ones(1, 1, 4, dtype=torch.float64)]
    check_against_reference(student, cases, BORDER_HINT)


@points(1)
@requires("test_image_gradients_match_sobel_in_float64")
def test_image_gradients_do_not_call_a_convolution(student):
    """image_gradients builds the Sobel sums from slices, without conv2d, F.pad or a ready-made filter"""
    images = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    try:  # what its code (and its helpers) names, and the torch functions that run on a real call
        expect_implemented_without(student, "image_gradients", FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES,
                                   calling=((images,), {}))
    except AssertionError as error:
        raise AssertionError(f"{error} A ready-made convolution, padding or filter is off limits here: pad with "
                             "torch.zeros and a slice assignment, then add weighted slices of the padded batch."
                             ) from None


@gpu
@points(1)
@requires("test_image_gradients_match_sobel_in_float64")
def test_image_gradients_keep_tensors_on_the_gpu(student, device):
    """for images on cuda, gx and gy are cuda tensors with the right values"""
    images = torch.randint(0, 256, (2, 9, 7), generator=torch.Generator().manual_seed(6)).to(torch.float32)
    gx, gy = student.on(device).image_gradients(images)
    ref_x, ref_y = reference(images)
    hint = ("Create the padded tensor with device=images.device (and dtype=images.dtype), so that everything "
            "stays where the input is.")
    expect_on_device(gx, device, ref_x, name="gx computed on cuda", hint=hint)
    expect_on_device(gy, device, ref_y, name="gy computed on cuda", hint=hint)
