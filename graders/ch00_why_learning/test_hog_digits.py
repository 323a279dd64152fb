"""Hidden test: a linear classifier, trained here, on the student's HOG features of the digits (Chapter 0, section 3).

The trusted side loads the digits, splits them with its own seed, upsamples them to 16x16 and sends only the
images to the student's kernel; the labels never leave this process. The student's hog_features runs with a
correct Sobel in place of image_gradients (so section 1 is graded only once). The classifier and its threshold
are measured in THRESHOLDS.md.
"""
import torch
import torch.nn.functional as F

from dlvision.data import load_digits
from dlvision.grading import points

#: The grader's own train/test split (seed 7 of the ten measured in THRESHOLDS.md), and the accuracy bound.
SPLIT_SEED, THRESHOLD = 7, 0.95


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


def hog_digits_accuracy(features_of, seed):
    """Test accuracy of the linear classifier on features_of(images) for the digits split `seed`."""
    x_train, y_train, x_test, y_test = load_digits(seed=seed)
    x_train, x_test = upsample(x_train), upsample(x_test)
    feats = features_of(torch.cat([x_train, x_test]))
    assert isinstance(feats, torch.Tensor) and tuple(feats.shape) == (len(x_train) + len(x_test), 144), (
        "hog_features of 1797 images of 16x16 should have shape (1797, 144) (16 cells of 9 bins), got "
        + (f"{tuple(feats.shape)}" if isinstance(feats, torch.Tensor) else type(feats).__name__) + ".")
    assert bool(torch.isfinite(feats).all()), "hog_features of the digits contains inf or nan."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is faster, and a busy second core cannot stall it
    try:
        return linear_classifier_accuracy(feats[:len(x_train)], y_train, feats[len(x_train):], y_test)
    finally:
        torch.set_num_threads(threads)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_linear_classifier_on_hog_features_reaches_95_percent(student):
    """a linear classifier trained by the grader on your HOG features of the digits reaches 95% test accuracy"""
    accuracy = hog_digits_accuracy(
        lambda images: student.run(hog_with_reference_gradients, [(images, {})])[0], SPLIT_SEED)
    assert accuracy > THRESHOLD, (
        f"a linear classifier trained on your HOG features of the digits reached {accuracy:.1%} test accuracy "
        f"(needed: more than {THRESHOLD:.0%}; correct HOG features give about 98%, raw pixels about 96%). "
        "Features this weak usually mean the cells or the orientations are mixed up: check that each cell "
        "pools its own cell x cell block of pixels (reshape to (N, H/cell, cell, W/cell, cell) and sum over "
        "axes 2 and 4), and that theta is in degrees before it is divided by 180 / bins.")
