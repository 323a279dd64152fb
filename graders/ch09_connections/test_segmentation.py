"""Hidden test: the student's UNet, trained by the grader's own loop, segments shapes it has never seen.

The grader's loop and settings (SETUP): 1024 training images of make_shapes (24x24, at most two shapes per image,
noise 0.05) and 256 test images, both drawn from fresh_generator() here, so the student's code cannot regenerate
them; UNet(1, 4, 8, 3) made after torch.manual_seed(0), trained for 400 steps of Adam on the pixel-wise
cross-entropy, in batches of 16 drawn with a fixed generator, the learning rate following a one-cycle schedule
(peak 0.01). The network then predicts the test images in evaluation mode; the predictions come back and the
mean IoU is computed here, from test masks that never leave the trusted side. The bound is explained in
THRESHOLDS.md.
"""
import torch

from dlvision.data import SHAPES, make_shapes
from dlvision.grading import fresh_generator, points

SETUP = {"size": 24, "n_train": 1024, "n_test": 256, "shapes": {"max_shapes": 2, "noise": 0.05},
         "base_channels": 8, "depth": 3, "steps": 400, "batch": 16, "lr": 0.01, "init_seed": 0, "batch_seed": 1}
THRESHOLD = 0.8


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def train_unet_on_shapes(images, masks, test_images, base_channels, depth, steps, batch, lr, init_seed, batch_seed):
    """The grader's loop: UNet(1, 4, base_channels, depth) trained with Adam (one-cycle learning rate) on the
    pixel-wise cross-entropy; returns its predicted class maps for test_images (evaluation mode) and the losses."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        torch.manual_seed(init_seed)
        net = UNet(1, 4, base_channels, depth)
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
        g = torch.Generator().manual_seed(batch_seed)
        losses = []
        for _ in range(steps):
            index = torch.randint(0, len(images), (batch,), generator=g)
            loss = F.cross_entropy(net(images[index]), masks[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(test_images[i:i + 64]).argmax(dim=1) for i in range(0, len(test_images), 64)])
        return {"pred": pred, "losses": losses}
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def shapes_task(g):
    """Training images and masks, and test images and masks, all drawn from g."""
    s = SETUP
    images, masks = make_shapes(s["n_train"], s["size"], generator=g, **s["shapes"])
    test_images, test_masks = make_shapes(s["n_test"], s["size"], generator=g, **s["shapes"])
    return images, masks, test_images, test_masks


def per_class_iou(pred, target, num_classes):
    """IoU of each class over the whole set (nan for a class absent from both), in float64."""
    p, t = pred.reshape(-1).long(), target.reshape(-1).long()
    confusion = torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    confusion = confusion.double()
    inter = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))


def mean_iou(pred, target, num_classes):
    iou = per_class_iou(pred, target, num_classes)
    return iou[~iou.isnan()].mean().item()


def run_setup(student_or_run, g):
    """(predictions, losses, test masks) of one grading, for the measurements in THRESHOLDS.md as for the test."""
    s = SETUP
    images, masks, test_images, test_masks = shapes_task(g)
    got = student_or_run(train_unet_on_shapes, images, masks, test_images, s["base_channels"], s["depth"],
                         s["steps"], s["batch"], s["lr"], s["init_seed"], s["batch_seed"])
    return got, test_masks


# --- test ------------------------------------------------------------------------------------------------------

@points(5)
def test_unet_segments_unseen_shapes_with_mean_iou_above_0_8(student):
    """trained by the grader's loop, your UNet(1, 4, 8, 3) reaches a mean IoU above 0.8 on 256 new images"""
    s = SETUP
    got, test_masks = run_setup(lambda *args: student.run(*args, timeout=120), fresh_generator())
    pred, losses = got["pred"], got["losses"]
    assert isinstance(pred, torch.Tensor) and pred.shape == test_masks.shape and not pred.is_floating_point(), (
        f"UNet(1, 4, {s['base_channels']}, {s['depth']})(test images).argmax(dim=1) should be a class map of shape "
        f"{tuple(test_masks.shape)}; got "
        f"{tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__}. The output of UNet must "
        "be (N, num_classes, H, W): see the tests of UNet.")
    iou = per_class_iou(pred, test_masks, len(SHAPES))
    score = iou[~iou.isnan()].mean().item()
    classes = ", ".join(f"{name} {value:.2f}" for name, value in zip(SHAPES, iou.tolist()))
    trend = ""
    if isinstance(losses, list) and len(losses) == s["steps"] and all(isinstance(v, float) for v in losses):
        first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
        trend = f" The training loss went from {first:.3g} to {last:.3g}" + (
            " (it hardly fell: do gradients reach every layer? are the layers registered as modules?)."
            if last > 0.5 * first else ".")
    assert score > THRESHOLD, (
        f"after the grader's {s['steps']} training steps, your UNet(1, 4, {s['base_channels']}, {s['depth']}) "
        f"reaches a mean IoU of {score:.3f} on {s['n_test']} unseen images (per class: {classes}); a correct U-Net "
        f"reaches 0.89 to 0.95 (required: more than {THRESHOLD}).{trend} A network without skip connections stays "
        "near 0.65: the decoder must concatenate the encoder's map of the same resolution. If other tests of UNet "
        "fail, fix those first.")
