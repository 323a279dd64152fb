"""Hidden tests for hog_features (Chapter 0, section 2).

While these tests run, the student's image_gradients is swapped for a correct Sobel (F.conv2d, zero padding 1)
inside the kernel, so a mistake in section 1 is graded there and only there. The reference HOG is computed here
in float64 from the same Sobel, by the rule the notebook states. Random test images are drawn (with fixed
seeds) so that no pixel's gradient lies within 1e-4 (orientation distance in radians times magnitude) of a bin
edge: hard binning then gives the same bins whether a solution works in degrees or radians, float32 or float64.
"""
import math

import torch
import torch.nn.functional as F

from dlvision.grading import expect_close, expect_keeps_device, expect_on_device, gpu, points, requires

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
SOBEL_Y = SOBEL_X.T.contiguous()
EPS = 1e-8

#: (N, H, W, cell, bins): the default 16x16 with 4x4 cells, a batch of one, non-square images, sizes that are
#: not a multiple of the cell (cropped), a single cell, other values of cell and of bins.
CASES = [(3, 16, 16, 4, 9), (1, 8, 8, 4, 9), (2, 10, 13, 4, 9), (1, 12, 7, 3, 6), (2, 9, 9, 9, 4),
         (1, 5, 20, 5, 12), (2, 16, 8, 2, 9)]

LAYOUT_HINT = ("Features are the cells' histograms in row-major cell order with the bins innermost: reshape "
               "(N, H', W') maps to (N, H'/cell, cell, W'/cell, cell) and sum over axes 2 and 4, giving "
               "(N, rows, cols, bins), then flatten. Cells tile from the top left; compute the gradients on "
               "the whole image first, then drop the last H % cell rows and W % cell columns.")
BINNING_HINT = ("Orientation is atan2(gy, gx) (gy first) in degrees, folded into [0, 180) with % 180; the bin "
                "is floor(theta / (180 / bins)), and each pixel adds its magnitude sqrt(gx**2 + gy**2) to that "
                "one bin.")
DEVICE_HINT = ("hog_features must work on any device and return its features on the device of `images`: make "
               "every new tensor (the bin numbers torch.arange(bins), a torch.zeros(...) of histograms) with "
               "device=images.device, not on the CPU and not on the notebook's global `device`.")
NORM_HINT = "Divide each image's whole feature vector by sqrt(sum(v**2) + eps**2), eps = 1e-8."


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def hog_with_reference_gradients(cases):
    """hog_features(images, **kwargs) for each case, with a correct Sobel as image_gradients while it runs."""
    import torch
    import torch.nn.functional as F

    def sobel(images):
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=images.dtype,
                          device=images.device)
        x = images[:, None]
        return (F.conv2d(x, kx[None, None], padding=1)[:, 0], F.conv2d(x, kx.T[None, None], padding=1)[:, 0])

    space = getattr(hog_features, "__globals__", None)
    saved = space.get("image_gradients", sobel) if space is not None else None
    if space is not None:
        space["image_gradients"] = sobel
    try:
        return [hog_features(images, **kwargs) for images, kwargs in cases]
    finally:
        if space is not None:
            space["image_gradients"] = saved


def hog_features_given_correct_gradients(images, kwargs, device="cpu"):
    """hog_features(images, **kwargs) with a correct Sobel as image_gradients, for expect_keeps_device (which moves
    `images` to the device under test itself; `device` only says which)."""
    import torch
    import torch.nn.functional as F

    def sobel(images):
        kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=images.dtype,
                          device=images.device)
        x = images[:, None]
        return (F.conv2d(x, kx[None, None], padding=1)[:, 0], F.conv2d(x, kx.T[None, None], padding=1)[:, 0])

    space = getattr(hog_features, "__globals__", None)
    saved = space.get("image_gradients", sobel) if space is not None else None
    if space is not None:
        space["image_gradients"] = sobel
    try:
        return hog_features(images, **kwargs)
    finally:
        if space is not None:
            space["image_gradients"] = saved


# --- helpers on the trusted side -------------------------------------------------------------------------------

def sobel64(images):
    x = images.double()[:, None]
    return F.conv2d(x, SOBEL_X[None, None], padding=1)[:, 0], F.conv2d(x, SOBEL_Y[None, None], padding=1)[:, 0]


def cell_sums(maps, cell):
    """(N, H, W, ...) -> (N, H // cell, W // cell, ...): sums over each cell of the cropped maps."""
    n, h, w = maps.shape[:3]
    rows, cols = h // cell, w // cell
    cropped = maps[:, :rows * cell, :cols * cell]
    return cropped.reshape(n, rows, cell, cols, cell, *maps.shape[3:]).sum(dim=(2, 4))


def reference_hog(images, cell=4, bins=9):
    """The stated HOG, in float64, cast to the input's dtype."""
    gx, gy = sobel64(images)
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)
    theta = torch.rad2deg(torch.atan2(gy, gx)) % 180.0
    index = torch.floor(theta / (180.0 / bins)).long().clamp(0, bins - 1)
    # Not the notebook's words (votes = magnitude[..., None] * ...): a student's line quoted in an error message
    # must not look like grader code, or the report redacts the whole message.
    votes = F.one_hot(index, bins).double() * magnitude[..., None]
    v = cell_sums(votes, cell).reshape(images.shape[0], -1)
    return (v / torch.sqrt((v ** 2).sum(dim=1, keepdim=True) + EPS ** 2)).to(images.dtype)


def clear_of_bin_edges(images, bins):
    """True if every pixel with a gradient is at least 1e-4 (angle in radians times magnitude) from a bin edge."""
    gx, gy = sobel64(images)
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)
    width = math.pi / bins
    offset = torch.atan2(gy, gx) % width
    distance = torch.minimum(offset, width - offset) * magnitude
    return bool(((magnitude == 0) | (distance > 1e-4)).all())


def safe_images(shape, bins, dtype, seed):
    """Random images in [0, 1] of `shape` and `dtype`, the first (from seed on) whose gradients avoid bin edges."""
    for attempt in range(200):
        g = torch.Generator().manual_seed(seed * 1000 + attempt)
        images = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
        if clear_of_bin_edges(images, bins):
            return images
    raise RuntimeError(f"no image of shape {shape} clear of the bin edges: the grader's bug")


def hogs(student, cases):
    """The student's features for each (images, kwargs), checked to be tensors."""
    results = student.run(hog_with_reference_gradients, cases)
    for (images, kwargs), feats in zip(cases, results):
        assert isinstance(feats, torch.Tensor), (
            f"hog_features should return a tensor, got {type(feats).__name__} for {describe(images, kwargs)}.")
    return results


def describe(images, kwargs):
    return (f"images of shape {tuple(images.shape)}, {str(images.dtype).removeprefix('torch.')}, "
            f"cell={kwargs.get('cell', 4)}, bins={kwargs.get('bins', 9)}")


def expect_features_are_right(feats, images, kwargs):
    """The last step of an invariance test: the features themselves are the stated HOG. Features that ignore the
    image (zeros, one constant unit vector) are invariant to everything and must not earn the point."""
    expect_close(feats, reference_hog(images, **kwargs), name=f"hog_features for {describe(images, kwargs)}",
                 hint="The invariance holds, but the features are not yet the stated HOG, and the invariance "
                      "counts only for features that are (the tests comparing with the stated HOG say what "
                      "differs). " + " ".join([BINNING_HINT, LAYOUT_HINT, NORM_HINT]))


def check_against_reference(student, dtype, seed):
    cases = [(safe_images((n, h, w), bins, dtype, seed + k), {"cell": cell, "bins": bins})
             for k, (n, h, w, cell, bins) in enumerate(CASES)]
    cases.append((safe_images((2, 16, 16), 9, dtype, seed + 99), {}))  # the defaults, cell=4 and bins=9
    for (images, kwargs), feats in zip(cases, hogs(student, cases)):
        expect_close(feats, reference_hog(images, **kwargs), name=f"hog_features for {describe(images, kwargs)}",
                     hint=" ".join([BINNING_HINT, LAYOUT_HINT, NORM_HINT]))


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_hog_matches_the_stated_descriptor_in_float64(student):
    """hog_features matches the stated HOG on many sizes, cell sizes and bin counts, in float64"""
    check_against_reference(student, torch.float64, 10)
    # The device contract ("any device"), on a GPU or the stand-in: it can only fail this test, never earn points.
    images = safe_images((2, 10, 13), 6, torch.float64, 11)
    expect_keeps_device(student, hog_features_given_correct_gradients, images, {"cell": 4, "bins": 6},
                        hint=DEVICE_HINT)


@points(1)
def test_hog_matches_the_stated_descriptor_in_float32(student):
    """hog_features matches the stated HOG in float32"""
    check_against_reference(student, torch.float32, 20)


@points(1)
@requires("test_hog_matches_the_stated_descriptor_in_float64")
def test_hog_returns_one_histogram_per_cell_in_the_input_dtype(student):
    """hog_features returns (N, (H // cell) * (W // cell) * bins) features with the input's dtype"""
    g = torch.Generator().manual_seed(1)
    cases = [(torch.rand((n, h, w), generator=g, dtype=torch.float64).to(dtype), {"cell": cell, "bins": bins})
             for dtype in (torch.float32, torch.float64) for n, h, w, cell, bins in CASES]
    for (images, kwargs), feats in zip(cases, hogs(student, cases)):
        n, h, w = images.shape
        expected = (n, (h // kwargs["cell"]) * (w // kwargs["cell"]) * kwargs["bins"])
        assert tuple(feats.shape) == expected and feats.dtype == images.dtype, (
            f"for {describe(images, kwargs)} expected features of shape {expected} and dtype "
            f"{str(images.dtype).removeprefix('torch.')}, got {tuple(feats.shape)} and "
            f"{str(feats.dtype).removeprefix('torch.')}. " + LAYOUT_HINT)


#: (direction of the gradient in degrees, bins, the bin it falls in). Angles of 180 or more point the other
#: way along the same line, so unsigned orientation puts them where angle - 180 goes. The axis directions are
#: exact (gy == 0 or gx == 0): a leftward gradient has atan2(0, -8) = 180 degrees, which folds to 0, bin 0.
RAMPS = [(10, 9, 0), (50, 9, 2), (95, 9, 4), (130, 9, 6), (170, 9, 8), (210, 9, 1), (290, 9, 5), (345, 9, 8),
         (45, 6, 1), (105, 6, 3), (255, 6, 2), (0, 9, 0), (90, 9, 4), (180, 9, 0), (270, 9, 4)]


def ramp(angle, ys, xs):
    """The ramp cos(a) x + sin(a) y, with exact coefficients along the axes (cos 90 is 6e-17, not 0)."""
    c, s = (round(v) if abs(v - round(v)) < 1e-12 else v
            for v in (math.cos(math.radians(angle)), math.sin(math.radians(angle))))
    return (c * xs + s * ys)[None]


@points(1)
def test_hog_puts_a_ramp_in_the_bin_of_its_direction(student):
    """a linear ramp whose gradient points at angle a votes only for the bin of a mod 180 in its centre cell"""
    ys, xs = torch.meshgrid(torch.arange(12.0, dtype=torch.float64), torch.arange(12.0, dtype=torch.float64),
                            indexing="ij")
    cases = [(ramp(a, ys, xs), {"cell": 4, "bins": bins}) for a, bins, _ in RAMPS]
    for (angle, bins, expected), (images, kwargs), feats in zip(RAMPS, cases, hogs(student, cases)):
        assert tuple(feats.shape) == (1, 9 * bins), f"expected shape (1, {9 * bins}), got {tuple(feats.shape)}."
        centre = feats.reshape(3, 3, bins)[1, 1].double()   # the only cell whose pixels see no zero padding
        winner = int(centre.argmax())
        assert winner == expected and (centre > 1e-6 * centre.max()).sum() == 1, (
            f"a 12x12 ramp whose gradient points at {angle} degrees (gx = 8 cos a, gy = 8 sin a, y downwards) "
            f"should vote only in bin {expected} of {bins} in its centre cell, but the centre cell's histogram is "
            f"{[round(float(v), 4) for v in centre]}. " + BINNING_HINT
            + " atan2 returns radians: convert them to degrees before dividing by 180 / bins, and fold angles of "
              "180 or more back (unsigned orientation): theta % 180 maps 180 itself (a gradient pointing left) to "
              "0, which a test such as theta < 0 misses.")
    # A gradient a hair below the horizontal (gx = 2, gy = -2e-30): theta % 180 rounds to 180.0 itself, one bin past
    # the last, and the stated clamp to bins - 1 puts its vote in the last bin.
    image = torch.zeros(1, 8, 8, dtype=torch.float64)
    image[0, 3, 4], image[0, 2, 3] = 1.0, 1e-30
    feats = hogs(student, [(image, {})])[0]
    expect_close(feats, reference_hog(image), name="hog_features of an 8x8 image whose pixel (3, 3) has gx = 2 and "
                 "gy = -2e-30 (theta % 180 rounds to 180.0)",
                 hint="floor(theta / (180 / bins)) is bins itself when theta % 180 rounds to 180.0: clamp the bin "
                      "to bins - 1 (.clamp(0, bins - 1)), as stated, so that the vote lands in the last bin.")


@points(1)
def test_hog_votes_are_weighted_by_gradient_magnitude(student):
    """each cell's share of the features equals its share of the summed gradient magnitude"""
    g = torch.Generator().manual_seed(4)
    shapes = [((3, 16, 16), 4, 9), ((1, 12, 9), 3, 6), ((2, 8, 8), 4, 9)]
    cases = [(torch.rand(shape, generator=g, dtype=torch.float64) ** 3, {"cell": cell, "bins": bins})
             for shape, cell, bins in shapes]
    cases.append((torch.randint(0, 256, (2, 16, 16), generator=g).double(), {}))
    for (images, kwargs), feats in zip(cases, hogs(student, cases)):
        cell, bins = kwargs.get("cell", 4), kwargs.get("bins", 9)
        gx, gy = sobel64(images)
        mass = cell_sums(torch.sqrt(gx ** 2 + gy ** 2), cell).reshape(len(images), -1)
        assert feats.numel() == mass.numel() * bins, (
            f"expected {mass.shape[1] * bins} features per image for {describe(images, kwargs)}, "
            f"got shape {tuple(feats.shape)}. " + LAYOUT_HINT)
        share = feats.double().reshape(len(images), -1, bins).sum(dim=2)
        expect_close(share / share.sum(dim=1, keepdim=True), mass / mass.sum(dim=1, keepdim=True),
                     name=f"each cell's share of the feature mass, {describe(images, kwargs)}",
                     hint="Before normalisation, a cell's histogram must sum to the total gradient magnitude in "
                          "that cell: each pixel adds its magnitude (not 1) to exactly one bin of its own cell, "
                          "and the L2 normalisation divides the whole vector by one number per image (not each "
                          "cell by its own).")


@points(1)
def test_hog_is_invariant_to_brightness_scale(student):
    """hog(a * x) equals hog(x) for a = 0.01, 7 and 255, and every image's features have unit L2 norm"""
    x = safe_images((3, 16, 16), 9, torch.float64, 5)
    scales = (1.0, 0.01, 7.0, 255.0)
    results = hogs(student, [(a * x, {}) for a in scales])
    expect_close(results[0].norm(dim=1), torch.ones(3, dtype=torch.float64),
                 name="the L2 norm of each image's features", hint=NORM_HINT)
    for a, feats in zip(scales[1:], results[1:]):
        expect_close(feats, results[0], name=f"hog_features({a:g} * x) against hog_features(x)",
                     hint="Scaling an image by a multiplies every gradient magnitude, hence every vote, by a; "
                          "only the normalisation takes it out again. " + NORM_HINT)
    expect_features_are_right(results[0], x, {})


@points(1)
def test_hog_ignores_the_sign_of_gradients(student):
    """hog(-x) equals hog(x): unsigned orientation treats dark-to-light and light-to-dark edges alike"""
    cases = []
    for k, (shape, bins) in enumerate((((3, 16, 16), 9), ((2, 12, 12), 6))):
        x = safe_images(shape, bins, torch.float64, 30 + k)
        cases += [(x, {"bins": bins}), (-x, {"bins": bins})]
    results = hogs(student, cases)
    for k in range(0, len(cases), 2):
        expect_close(results[k + 1], results[k], name=f"hog_features(-x) against hog_features(x), "
                                                      f"{describe(*cases[k])}",
                     hint="Negating the image turns every gradient by 180 degrees. Unsigned orientation folds "
                          "theta into [0, 180) with theta % 180, so both directions along an edge share a bin; "
                          "atan2 alone gives (-180, 180], and % 360 keeps the sign.")
        expect_features_are_right(results[k], *cases[k])


@points(1)
def test_hog_of_a_blank_image_is_zero_not_nan(student):
    """a blank (all-zero) image gives all-zero features; a constant image gives finite, unit-norm features; a faint
    one is normalised with eps = 1e-8 as stated"""
    cases = [(torch.zeros(2, 8, 8, dtype=dtype), {}) for dtype in (torch.float32, torch.float64)]
    cases.append((torch.full((1, 12, 12), 0.7, dtype=torch.float64), {}))
    results = hogs(student, cases)
    for (images, kwargs), feats in zip(cases[:2], results[:2]):
        expect_close(feats, torch.zeros(2, 2 * 2 * 9, dtype=images.dtype), name=f"hog_features of a blank image, "
                     f"{describe(images, kwargs)}",
                     hint="A blank image has no gradients, so every histogram is 0 and its norm is 0; "
                          "0 / 0 is nan, which is why eps**2 goes under the square root.")
    feats = results[2]
    assert tuple(feats.shape) == (1, 81) and bool(torch.isfinite(feats).all()), (
        f"hog_features of a constant 12x12 image should be 81 finite values, got shape {tuple(feats.shape)} "
        f"with {int((~torch.isfinite(feats)).sum()) if feats.is_floating_point() else '?'} non-finite ones.")
    expect_close(feats.reshape(3, 3, 9)[1, 1], torch.zeros(9, dtype=torch.float64),
                 name="the centre cell of a constant 12x12 image",
                 hint="Inside a constant image every gradient is 0; only the border, where zero padding makes "
                      "an edge, has votes.")
    # A faint image (contrast 1e-9): the norm is about 1e-7, so eps**2 = 1e-16 under the square root shows.
    faint = 1e-9 * safe_images((2, 8, 8), 9, torch.float64, 40)
    expect_close(hogs(student, [(faint, {})])[0], reference_hog(faint), name="hog_features of a faint image "
                 "(values up to 1e-9, float64)", hint="Normalise with sqrt(sum(v**2) + eps**2), eps = 1e-8 exactly as "
                 "stated: for an image this faint, eps**2 = 1e-16 is not negligible, so eps, 2 * eps or eps**3 give "
                 "other features.")
    expect_close(feats.norm(), torch.tensor(1.0, dtype=torch.float64), name="the L2 norm of a constant image's "
                 "features", hint="The border of a constant image is an edge (zero padding), so its features "
                                  "are not all 0 and must be normalised to unit length. " + NORM_HINT)


@gpu
@points(1)
@requires("test_hog_matches_the_stated_descriptor_in_float64")
def test_hog_keeps_tensors_on_the_gpu(student, device):
    """for images on cuda, hog_features returns a cuda tensor with the right values"""
    images = safe_images((3, 16, 16), 9, torch.float64, 40)   # float64: no TF32 in the Sobel on the GPU
    [feats] = student.on(device).run(hog_with_reference_gradients, [(images, {})])
    expect_on_device(feats, device, reference_hog(images), rtol=1e-6, name="hog_features computed on cuda",
                     hint="Create new tensors (torch.arange(bins), torch.zeros(...)) with device=images.device, so "
                          "that everything stays where the input is.")
