"""Hidden tests: the student's HOG features of real digits (Chapter 0, section 3), and a linear classifier, trained
here, on them.

The digits are public (anyone can call ``dlvision.data.load_digits``), so the trusted side never grades on them as
they are: it shifts every image by a random whole number of pixels, scales its contrast and adds noise, all drawn
from ``fresh_generator()``, and splits them with ``fresh_seed()``. Only the images go to the student's kernel, in
an order that hides the split; the labels never leave this process. The student's hog_features runs with a correct
Sobel in place of image_gradients (so section 1 is graded only once). Measurements: THRESHOLDS.md.
"""
import math

import torch
import torch.nn.functional as F

from dlvision.data import load_digits
from dlvision.grading import expect_close, fresh_generator, fresh_seed, points

#: The accuracy bound of the classifier test. THRESHOLDS.md, 20 draws: the reference scores 0.851 to 0.915, the best
#: broken-layout answer at most 0.641, the best cheap baseline (a nearest-neighbour lookup) at most 0.722.
THRESHOLD = 0.78
#: The random transform: shifts of up to SHIFT pixels (of 16) each way, contrast x U[0.5, 1.5], noise N(0, NOISE).
SHIFT, NOISE = 2, 0.05

SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
SOBEL_Y = SOBEL_X.T.contiguous()

HINT = ("Orientation is atan2(gy, gx) (gy first) in degrees, folded into [0, 180) with % 180; the bin is "
        "floor(theta / (180 / bins)), and each pixel adds its magnitude sqrt(gx**2 + gy**2) to that one bin. Each "
        "cell pools its own cell x cell block of pixels (reshape to (N, H/cell, cell, W/cell, cell) and sum over "
        "axes 2 and 4), cells in row-major order with the bins innermost, and the whole vector of each image is "
        "divided by sqrt(sum(v**2) + eps**2), eps = 1e-8.")


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


# --- helpers on the trusted side -------------------------------------------------------------------------------

def upsample(images, size=16):
    return F.interpolate(images[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def shifted_noisy(images, generator, shift=SHIFT, noise=NOISE):
    """Each (16x16) image moved by a random whole number of pixels in [-shift, shift] each way (zeros come in),
    its contrast scaled by a random factor in [0.5, 1.5], plus Gaussian noise: float64."""
    n, h, w = images.shape
    padded = F.pad(images.double(), (shift, shift, shift, shift))
    dy, dx = torch.randint(0, 2 * shift + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]
    moved = padded[torch.arange(n)[:, None, None], rows, cols]
    contrast = 0.5 + torch.rand(n, 1, 1, generator=generator, dtype=torch.float64)
    return moved * contrast + noise * torch.randn(moved.shape, generator=generator, dtype=torch.float64)


def sobel64(images):
    x = images.double()[:, None]
    return F.conv2d(x, SOBEL_X[None, None], padding=1)[:, 0], F.conv2d(x, SOBEL_Y[None, None], padding=1)[:, 0]


def reference_hog(images, cell=4, bins=9):
    """The stated HOG, in float64, cast to the input's dtype."""
    gx, gy = sobel64(images)
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)
    theta = torch.rad2deg(torch.atan2(gy, gx)) % 180.0
    index = torch.floor(theta / (180.0 / bins)).long().clamp(0, bins - 1)
    n, h, w = images.shape
    rows, cols = h // cell, w // cell
    votes = (magnitude[..., None] * F.one_hot(index, bins).double())[:, :rows * cell, :cols * cell]
    v = votes.reshape(n, rows, cell, cols, cell, bins).sum(dim=(2, 4)).reshape(n, -1)
    return (v / torch.sqrt((v ** 2).sum(dim=1, keepdim=True) + 1e-8 ** 2)).to(images.dtype)


def clear_of_bin_edges(images, bins=9, margin=1e-9):
    """True if no pixel's vote could change bins by float64 rounding: (angle to the nearest bin edge, radians) times
    the magnitude exceeds ``margin`` wherever there is a gradient (noise makes exact edges have probability 0)."""
    gx, gy = sobel64(images)
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)
    offset = torch.atan2(gy, gx) % (math.pi / bins)
    distance = torch.minimum(offset, math.pi / bins - offset) * magnitude
    return bool(((magnitude == 0) | (distance > margin)).all())


def student_features(student, images):
    """The student's features of ``images``, checked to be a finite (N, 144) tensor."""
    feats = student.run(hog_with_reference_gradients, [(images, {})])[0]
    assert isinstance(feats, torch.Tensor) and tuple(feats.shape) == (len(images), 144), (
        f"hog_features of {len(images)} images of 16x16 should have shape ({len(images)}, 144) (16 cells of 9 "
        "bins), got " + (f"{tuple(feats.shape)}" if isinstance(feats, torch.Tensor) else type(feats).__name__)
        + ".")
    assert feats.is_floating_point() and bool(torch.isfinite(feats).all()), (
        "hog_features of the digits should be finite floating-point numbers; it contains inf or nan, or is not "
        "floating point. A blank cell or image has norm 0: eps**2 under the square root keeps 0 / 0 away.")
    return feats


def linear_classifier_accuracy(features_train, labels_train, features_test, labels_test, steps=300):
    """Softmax regression on standardised features: zero init, full-batch Adam (lr 0.1), L2 penalty 1e-4, float64."""
    a, b = features_train.double(), features_test.double()
    mean, std = a.mean(dim=0), a.std(dim=0) + 1e-6
    a, b = (a - mean) / std, (b - mean) / std
    weight = torch.zeros(a.shape[1], 10, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([weight, bias], lr=0.1)
    for _ in range(steps):
        loss = F.cross_entropy(a @ weight + bias, labels_train) + 1e-4 * (weight ** 2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return ((b @ weight + bias).argmax(dim=1) == labels_test).double().mean().item()


def shifted_digits_accuracy(features_of, split_seed, generator):
    """Test accuracy of the linear classifier on features_of(images) of the digits split ``split_seed``, every
    image shifted, rescaled and noised by ``generator``; the images go out in an order that hides the split."""
    x_train, y_train, x_test, y_test = load_digits(seed=split_seed)
    images = shifted_noisy(upsample(torch.cat([x_train, x_test])), generator).float()
    order = torch.randperm(len(images), generator=generator)
    feats = torch.empty(len(images), 144, dtype=torch.float64)
    feats[order] = features_of(images[order]).double()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster, and a busy second core cannot stall it
    try:
        return linear_classifier_accuracy(feats[:len(x_train)], y_train, feats[len(x_train):], y_test)
    finally:
        torch.set_num_threads(threads)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_hog_of_shifted_noisy_digits_matches_the_stated_descriptor(student):
    """on all 1797 digits, randomly shifted, rescaled and noised, hog_features equals the stated HOG (float64)"""
    x_train, _, x_test, _ = load_digits(seed=0)
    digits = upsample(torch.cat([x_train, x_test]))
    for _ in range(20):  # the noise makes a pixel on a bin edge unlikely (THRESHOLDS.md); redraw if one is
        images = shifted_noisy(digits, fresh_generator())
        if clear_of_bin_edges(images):
            break
    else:
        raise RuntimeError("no draw of the digits clear of the bin edges: the grader's bug")
    expect_close(student_features(student, images), reference_hog(images),
                 name="hog_features of 1797 digits (16x16, shifted, rescaled and with noise, float64)", hint=HINT)


@points(1)
def test_linear_classifier_on_hog_of_shifted_digits_beats_the_threshold(student):
    """a linear classifier trained by the grader on your HOG features of shifted, noisy digits reaches 78% accuracy"""
    accuracy = shifted_digits_accuracy(lambda images: student_features(student, images), fresh_seed(),
                                       fresh_generator())
    assert accuracy > THRESHOLD, (
        f"a linear classifier trained on your HOG features of the digits (each shifted by up to {SHIFT} pixels, "
        f"its contrast scaled and noise added) reached {accuracy:.1%} test accuracy (needed: more than "
        f"{THRESHOLD:.0%}; correct HOG features give 85% to 92%, raw pixels about 62%). Features this weak usually "
        "mean the cells or the orientations are mixed up: check that each cell pools its own cell x cell block of "
        "pixels (reshape to (N, H/cell, cell, W/cell, cell) and sum over axes 2 and 4), and that theta is in "
        "degrees before it is divided by 180 / bins.")
