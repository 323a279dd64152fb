"""Hidden tests for iou_score (Chapter 9, section 2).

The reference is computed here, in float64, from a confusion matrix of the two maps (torch.bincount over the
pixels of the whole batch): IoU_c = |P_c & T_c| / |P_c | T_c| for every class c = 0 .. num_classes - 1, the mean
taken over the classes present in pred or target. The comparison allows a relative error of 1e-6, so that a
correct implementation that divides in float32 before returning float64 passes too (see THRESHOLDS.md).
"""
import torch

from dlvision.grading import expect_close, expect_keeps_device, points, requires, speed_ratio

RTOL, ATOL = 1e-6, 1e-12
HINT = ("For each class c, count the pixels of the whole batch where pred == c and target == c (intersection) and "
        "where either is c (union); skip the classes whose union is 0 and average the others. Return a 0-d float64 "
        "tensor on pred's device.")


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def iou_speed_inputs(g):
    """Two 8x48x48 maps over 6 classes that agree on about 70% of their pixels (runs in the kernel and here)."""
    import torch

    target = torch.randint(0, 6, (8, 48, 48), generator=g)
    noise = torch.randint(0, 6, (8, 48, 48), generator=g)
    pred = torch.where(torch.rand(8, 48, 48, generator=g) < 0.7, target, noise)
    return (pred, target, 6), {}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def confusion(pred, target, num_classes):
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    counts = torch.bincount(t * num_classes + p, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes).double()  # rows: target class, columns: predicted class


def reference(pred, target, num_classes):
    m = confusion(pred, target, num_classes)
    inter = m.diag()
    union = m.sum(0) + m.sum(1) - inter
    present = union > 0
    return (inter[present] / union[present]).mean()


def diagnose(got, pred, target, num_classes):
    """A hint naming the likely mistake when got equals a known wrong variant."""
    m = confusion(pred, target, num_classes)
    inter, area_p, area_t = m.diag(), m.sum(0), m.sum(1)
    union = area_p + area_t - inter
    present = union > 0
    per_class = torch.where(present, inter / union.clamp(min=1), torch.zeros_like(inter))
    variants = {
        "the mean over all num_classes classes, with the absent ones counted as 0: skip a class whose union is 0":
            per_class.mean(),
        "the mean over all num_classes classes, with the absent ones counted as 1: skip a class whose union is 0":
            torch.where(present, per_class, torch.ones_like(per_class)).mean(),
        "the mean over the classes present in target only: a class that only pred contains scores 0 and counts":
            per_class[area_t > 0].mean(),
        "the mean over the classes 1 .. num_classes - 1: the background (class 0) counts like any other class":
            per_class[1:][present[1:]].mean() if present[1:].any() else torch.tensor(float("nan")),
        "the union taken as |P_c| + |T_c|, counting the intersection twice: |P_c | T_c| = |P_c| + |T_c| - "
        "|P_c & T_c|": (inter[present] / (area_p + area_t)[present]).mean(),
    }
    if pred.dim() == 3 and pred.shape[0] > 1:
        variants["the mean of the per-image scores: count the pixels of the whole batch together"] = torch.stack(
            [reference(p, t, num_classes) for p, t in zip(pred, target)]).mean()
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        for text, value in variants.items():
            if torch.isfinite(value) and abs(float(got) - float(value)) <= 1e-6 * max(1e-9, abs(float(value))) \
                    and abs(float(value) - float(reference(pred, target, num_classes))) > 1e-6:
                return f"Your result equals {text}."
    return HINT


def random_maps(g, shape, num_classes):
    """A target of blobs over a random subset of the classes, and a prediction that agrees with it on a random
    share of pixels, using a possibly different subset (so some classes are in one map only, some in neither)."""
    n, h, w = shape
    def blobs(classes):
        coarse = classes[torch.randint(0, len(classes), (n, 1, max(1, h // 3), max(1, w // 3)), generator=g)]
        return torch.nn.functional.interpolate(coarse.double(), size=(h, w), mode="nearest").long()[:, 0]
    def subset():
        keep = torch.rand(num_classes, generator=g) < 0.75
        keep[torch.randint(0, num_classes, (1,), generator=g)] = True
        return torch.arange(num_classes)[keep]
    target = blobs(subset())
    other = blobs(subset())
    agree = torch.rand(shape, generator=g) < torch.rand((), generator=g)
    return torch.where(agree, target, other), target


def case_name(pred, num_classes):
    return f"iou_score(pred, target, num_classes={num_classes}) for maps of shape {tuple(pred.shape)}"


def check(student, pred, target, num_classes, expected=None, what=""):
    expected = reference(pred, target, num_classes) if expected is None else expected
    got = student.iou_score(pred, target, num_classes)
    expect_close(got, expected, rtol=RTOL, atol=ATOL, name=case_name(pred, num_classes) + what,
                 hint=diagnose(got, pred, target, num_classes))


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_iou_matches_its_definition_on_random_maps(student):
    """iou_score equals the mean per-class IoU, pooled over the batch, on 24 random pairs of maps"""
    g = torch.Generator().manual_seed(11)
    shapes = [(1, 1, 1), (1, 5, 7), (2, 9, 4), (3, 16, 16), (4, 1, 13), (2, 32, 24)]
    for k in range(24):
        num_classes = [2, 3, 4, 5, 7, 10][k % 6]
        pred, target = random_maps(g, shapes[k // 4], num_classes)
        check(student, pred, target, num_classes)


@points(1)
def test_iou_is_one_for_a_perfect_prediction_and_zero_for_disjoint_maps(student):
    """a perfect prediction scores exactly 1 (one class, or some classes absent, too); maps that never agree 0"""
    g = torch.Generator().manual_seed(12)
    for shape, num_classes in (((2, 6, 5), 3), ((1, 8, 8), 6), ((3, 4, 7), 1), ((1, 1, 1), 4)):
        _, target = random_maps(g, shape, num_classes)
        check(student, target.clone(), target, num_classes, torch.tensor(1.0, dtype=torch.float64),
              " (a perfect prediction)")
    for shape, num_classes in (((2, 6, 5), 3), ((1, 8, 8), 6), ((1, 1, 1), 2)):
        _, target = random_maps(g, shape, num_classes)
        check(student, (target + 1) % num_classes, target, num_classes, torch.tensor(0.0, dtype=torch.float64),
              " (pred = (target + 1) % num_classes: no pixel right)")


@points(1)
def test_iou_skips_classes_absent_from_both_maps(student):
    """classes in neither map are left out of the mean (so num_classes larger than needed changes nothing)"""
    target = torch.zeros(1, 4, 5, dtype=torch.int64)
    target[0, 1:3, 1:4] = 3                          # 6 pixels of class 3
    pred = torch.zeros(1, 4, 5, dtype=torch.int64)
    pred[0, 1:3, 2:5] = 3                            # 6 pixels of class 3, 4 of them right
    # class 0: 14 of the 16 pixels of the union agree; class 3: 4 of 8; classes 1, 2, 4, 5 are absent from both
    expected = torch.tensor((12 / 16 + 4 / 8) / 2, dtype=torch.float64)
    for num_classes in (4, 6):
        check(student, pred, target, num_classes, expected, f" (only classes 0 and 3 occur)")


@points(1)
def test_iou_scores_a_class_in_only_one_map_as_zero(student):
    """a class predicted where the target has none, or missed entirely, scores 0 and counts in the mean"""
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1]]])
    pred = torch.tensor([[[0, 2, 1, 1], [0, 0, 1, 1]]])      # class 2 only in pred
    check(student, pred, target, 3, torch.tensor((3 / 4 + 1 + 0) / 3, dtype=torch.float64),
          " (class 2 is predicted but absent from target)")
    check(student, target, pred, 3, torch.tensor((3 / 4 + 1 + 0) / 3, dtype=torch.float64),
          " (class 2 is in target but never predicted)")


@points(1)
def test_iou_pools_the_pixels_of_the_whole_batch(student):
    """counts are summed over all images of the batch first, then divided (not a mean of per-image scores)"""
    target = torch.zeros(2, 6, 6, dtype=torch.int64)
    target[0, :, :3] = 1          # image 0: half of it class 1, found exactly
    target[1, 0, 0] = 1           # image 1: one pixel of class 1, missed
    pred = target.clone()
    pred[1, 0, 0] = 0
    check(student, pred, target, 2, what=" (two images of very different class areas)")


@points(1)
@requires("test_iou_matches_its_definition_on_random_maps")
def test_iou_keeps_the_device_of_its_input(student):
    """for maps on a GPU, iou_score computes there and returns a tensor on that device"""
    pred, target = random_maps(torch.Generator().manual_seed(13), (2, 8, 8), 4)
    expect_keeps_device(student, "iou_score", pred, target, 4, hint=(
        "Create new tensors (torch.arange(num_classes), torch.zeros(...)) with device=pred.device, and return a "
        "tensor (not a Python float) on that device."))


@points(1)
@requires("test_iou_matches_its_definition_on_random_maps")
def test_iou_is_vectorised(student):
    """iou_score on 8x48x48 maps takes at most 25 times as long as a bincount reference"""
    ratio = speed_ratio(student, "iou_score", reference, iou_speed_inputs)
    assert ratio < 25, (
        f"iou_score took {ratio:.0f} times as long as a vectorised reference (allowed: 25). Compare whole tensors "
        "(pred == c) and sum them; a Python loop over the classes is fine, a loop over pixels is not.")
