"""Hidden tests for UNet (Chapter 9, section 3).

The contract fixes what a U-Net does, not how its layers are named or laid out, so these tests judge behaviour:

- skip connections: trained briefly by the grader's loop to copy pixel-level noise (class 1 where a pixel is
  brighter than 0.5), a U-Net gets nearly every pixel right through its full-resolution skip; without skips
  everything passes through the 1/8-resolution bottleneck and it stays near chance (THRESHOLDS.md);
- the deep path: in evaluation mode, the gradient of a few output pixels with respect to the input reaches
  farther than full-resolution layers alone could (each level of depth widens it), and covers the whole
  neighbourhood of every output pixel, corners included (the upsampled maps line up with the skips);
- BatchNorm: in training mode an image's output depends on the other images of the batch, in evaluation mode not,
  and its layers' widths double at every level of the encoder (a width reported by the kernel may only fail it);
- raw logits from the last 1x1 convolution (no ReLU or softmax after it);
- output shapes (N, num_classes, H, W) for depths 1 to 3 and sizes not divisible by 2**depth, batches of one,
  one or several input channels and classes; the device contract; no torchvision.

Every verdict is reached here, from outputs, gradients and predictions that come back.
"""
import torch

from dlvision.grading import (expect_implemented_without, expect_keeps_device, expect_on_device, fresh_generator,
                              gpu, points, requires)
from dlvision.grading.device import Inconclusive, StandInTensor

COPY = {"height": 16, "width": 16, "base_channels": 4, "depth": 3, "steps": 150, "batch": 16, "lr": 0.01,
        "init_seed": 0, "noise_seed": 5, "n_test": 32}
COPY_THRESHOLD = 0.9

#: (depth, base_channels, least reach in pixels): a full-resolution path alone (two 3x3 convolutions in the
#: encoder, two in the decoder) reaches 4 pixels; measured reaches are in THRESHOLDS.md.
REACH = [(1, 8, 6), (2, 8, 16), (3, 8, 26)]
REACH_SIZE = (59, 61)
REACH_BLOCKS = [(28, 29), (31, 26)]

#: Output blocks at the centre and the four corners of the REACH_SIZE image; for each (depth, base_channels) the
#: radius of the neighbourhood whose input pixels the block's logits must nearly all depend on (THRESHOLDS.md).
ALIGN_BLOCKS = [(28, 29), (1, 1), (1, 58), (56, 1), (56, 58)]
ALIGN = [(1, 8, 6), (2, 8, 12), (3, 8, 16)]
ALIGN_COVERAGE = 0.8

#: (in_ch, num_classes, base_channels, depth) of the models whose BatchNorm widths are checked
WIDTH_CASES = [(1, 3, 4, 3), (2, 2, 3, 2), (1, 4, 8, 1)]

#: (in_ch, num_classes, base_channels, depth, (N, H, W))
SHAPE_CASES = [(1, 4, 8, 2, (2, 24, 24)), (1, 2, 4, 1, (1, 7, 5)), (3, 5, 4, 2, (2, 13, 10)),
               (1, 1, 2, 3, (1, 8, 8)), (2, 3, 4, 3, (3, 17, 23)), (1, 6, 3, 2, (1, 4, 9)),
               (4, 2, 2, 1, (2, 2, 3)), (1, 4, 4, 3, (2, 31, 9))]

ODD_SIZE_HINT = ("For sizes not divisible by 2**depth, max-pooling rounds down; bring each upsampled map to the size of "
                 "the skip it is concatenated with (e.g. zero-pad it at the bottom and right with F.pad), as the "
                 "docstring states.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def train_unet_to_copy(height, width, base_channels, depth, steps, batch, lr, init_seed, noise_seed, test_images):
    """The grader's loop: UNet(1, 2, base_channels, depth) trained with Adam to label each pixel of uniform noise
    1 if it is above 0.5; returns its predictions for test_images (evaluation mode) and the losses."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(init_seed)
        net = UNet(1, 2, base_channels, depth)
        net.train()
        optimizer = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(noise_seed)
        losses = []
        for _ in range(steps):
            x = torch.rand(batch, 1, height, width, generator=g)
            loss = F.cross_entropy(net(x), (x[:, 0] > 0.5).long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        net.eval()
        with torch.no_grad():
            out = net(test_images)
        return {"out_shape": list(out.shape), "pred": out.argmax(dim=1), "losses": losses}
    finally:
        torch.set_num_threads(threads)


def unet_input_gradients(depth, base_channels, x, blocks):
    """UNet(in_ch, 3, base_channels, depth) made after torch.manual_seed(depth), in evaluation mode: for each 2x2
    block of output pixels, the gradient of the sum of its logits (all classes) with respect to x."""
    import torch

    torch.manual_seed(depth)
    net = UNet(x.shape[1], 3, base_channels, depth).eval()
    grads = []
    for top, left in blocks:
        x_leaf = x.clone().requires_grad_(True)
        out = net(x_leaf)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or not out.requires_grad:
            return {"out_shape": list(getattr(out, "shape", [])), "grads": None}
        out[:, :, top:top + 2, left:left + 2].sum().backward()
        grads.append(x_leaf.grad)
    return {"out_shape": list(out.shape), "grads": grads}


def unet_batchnorm_widths(in_ch, num_classes, base_channels, depth):
    """UNet(in_ch, num_classes, base_channels, depth): the number of channels of each of its BatchNorm2d layers."""
    import torch

    net = UNet(in_ch, num_classes, base_channels, depth)
    return [m.num_features for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def unet_batch_dependence(a, b, c):
    """UNet(1, 3, 4, 2) made after torch.manual_seed(7): the output for image a within the batches [a, b] and
    [a, c], in training mode and then in evaluation mode."""
    import torch

    torch.manual_seed(7)
    net = UNet(1, 3, 4, 2)
    result = {}
    for mode in ("train", "eval"):
        net.train(mode == "train")
        with torch.no_grad():
            result[mode] = [net(torch.cat([a, b]))[0], net(torch.cat([a, c]))[0]]
    return result


def unet_logits(x, num_classes):
    """UNet(in_ch, num_classes, 4, 2) made after torch.manual_seed(3), in evaluation mode: its output for x."""
    import torch

    torch.manual_seed(3)
    net = UNet(x.shape[1], num_classes, 4, 2).eval()
    with torch.no_grad():
        return net(x)


def unet_shapes(cases, inputs):
    """For each case, the output's shape and dtype and whether it is finite, in evaluation mode and (where
    BatchNorm has more than one value per channel at the bottleneck) in training mode."""
    import torch

    found = []
    for (in_ch, num_classes, base_channels, depth, _), x in zip(cases, inputs):
        torch.manual_seed(0)
        net = UNet(in_ch, num_classes, base_channels, depth)
        modes = ["eval"]
        if x.shape[0] * (x.shape[2] >> depth) * (x.shape[3] >> depth) > 1:
            modes.append("train")
        for mode in modes:
            net.train(mode == "train")
            with torch.no_grad():
                out = net(x)
            found.append({"mode": mode, "shape": list(out.shape), "dtype": str(out.dtype),
                          "finite": bool(torch.isfinite(out).all())})
    return found


def unet_on_device(x, device="cpu"):
    """UNet(2, 3, 4, 2) built as the contract says (on the CPU), moved to the device under test, applied to x
    (odd sizes, so that the size rule runs too)."""
    import torch

    net = UNet(2, 3, 4, 2)
    if device != "cpu":
        net = net.to(device)
    return net(x)


def unet_on_cuda(x):
    """UNet(2, 3, 4, 2) in float64 made after torch.manual_seed(0), in training mode: its output for x on the CPU,
    then, moved to the device of x, its output there."""
    import torch

    torch.manual_seed(0)
    net = UNet(2, 3, 4, 2).double()
    with torch.no_grad():  # no autograd graph holds the parameters while .to() moves them
        result = {"cpu": net(x.cpu())}
    net = net.to(x.device)
    result["device"] = net(x)
    return result


# --- helpers on the trusted side -------------------------------------------------------------------------------

def input_gradients(student, depth, base_channels, x, blocks):
    """The gradients of unet_input_gradients, checked to be there: one per block, of x's shape."""
    got = student.run(unet_input_gradients, depth, base_channels, x, blocks)
    assert got["grads"] is not None, (
        f"UNet(1, 3, {base_channels}, {depth}) applied to an image of shape {tuple(x.shape)} returned an output "
        f"of shape {tuple(got['out_shape'])} that does not depend on its input (no gradient flows back).")
    assert all(isinstance(gr, torch.Tensor) and gr.shape == x.shape for gr in got["grads"]), (
        f"the gradient of UNet(1, 3, {base_channels}, {depth})'s output with respect to its input is missing "
        "or has the wrong shape.")
    return got["grads"]


def distances_from(block, shape):
    """Each pixel's Chebyshev distance from the 2x2 block whose top-left pixel is ``block``."""
    top, left = block
    ys, xs = torch.arange(shape[-2])[:, None], torch.arange(shape[-1])[None, :]
    dy = torch.clamp(torch.maximum(top - ys, ys - (top + 1)), min=0)
    dx = torch.clamp(torch.maximum(left - xs, xs - (left + 1)), min=0)
    return torch.maximum(dy, dx)


def reached(grad):
    """The input pixels with a gradient above 1e-7 of the largest (any channel, any image)."""
    g = grad.abs().amax(dim=(0, 1))
    return g > 1e-7 * g.max() if (g > 0).any() else torch.zeros_like(g, dtype=torch.bool)


def reach_of(grad, top, left):
    """The farthest Chebyshev distance from the 2x2 block at (top, left) of an input pixel with a nonzero
    gradient (-1 if none)."""
    hit = reached(grad)
    return int(distances_from((top, left), grad.shape)[hit].max()) if hit.any() else -1


def coverage_of(grad, block, radius):
    """The fraction of the input pixels within ``radius`` of ``block`` that the block's logits depend on."""
    near = distances_from(block, grad.shape) <= radius
    return (reached(grad) & near).sum().item() / near.sum().item()


def describe(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


# --- tests -----------------------------------------------------------------------------------------------------

@points(3)
def test_unet_copies_full_resolution_detail_through_its_skip_connections(student):
    """trained briefly to label noise pixel by pixel, UNet(1, 2, 4, 3) gets more than 90% of new pixels right"""
    c = COPY
    g = fresh_generator()
    test_images = torch.rand(c["n_test"], 1, c["height"], c["width"], generator=g)
    got = student.run(train_unet_to_copy, c["height"], c["width"], c["base_channels"], c["depth"], c["steps"],
                      c["batch"], c["lr"], c["init_seed"], c["noise_seed"], test_images, timeout=60)
    expected_shape = [c["n_test"], 2, c["height"], c["width"]]
    assert got["out_shape"] == expected_shape, (
        f"UNet(1, 2, {c['base_channels']}, {c['depth']}) applied to images of shape {tuple(test_images.shape)} "
        f"should return logits of shape {tuple(expected_shape)}, got {tuple(got['out_shape'])}.")
    accuracy = (got["pred"] == (test_images[:, 0] > 0.5)).double().mean().item()
    assert accuracy > COPY_THRESHOLD, (
        f"UNet(1, 2, {c['base_channels']}, {c['depth']}) was trained for {c['steps']} steps to label every pixel of "
        f"uniform noise (class 1 where it is above 0.5); it labels {accuracy:.1%} of the pixels of new noise "
        f"right; a U-Net gets 94% to 100%, a network without skip connections about 50% (required: more than "
        f"{COPY_THRESHOLD:.0%}). Pixel-level detail survives only through the skips: at every level of the decoder, "
        "concatenate the upsampled map with the encoder's map of the same resolution (before its max-pool) and "
        "feed both to the next convolutions.")


@points(2)
def test_unet_output_reaches_farther_with_every_level_of_depth(student):
    """in evaluation mode, an output pixel depends on input pixels beyond the reach of full-resolution layers"""
    g = torch.Generator().manual_seed(31)
    x = torch.randn(1, 1, *REACH_SIZE, generator=g)
    for depth, base_channels, least in REACH:
        grads = input_gradients(student, depth, base_channels, x, REACH_BLOCKS)
        reach = max(reach_of(gr, top, left) for gr, (top, left) in zip(grads, REACH_BLOCKS))
        assert reach >= least, (
            f"in evaluation mode, the logits of a 2x2 block of output pixels of UNet(1, 3, {base_channels}, {depth}) "
            f"depend on input pixels up to {reach} pixels away; a U-Net of depth {depth} sees at least {least} "
            f"pixels away (its levels at 1/2, 1/4, ... resolution widen the view), full-resolution layers alone 4. "
            "Is the decoder fed from the bottleneck, level by level (upsample, concatenate, convolve), and does "
            "the encoder have depth max-pools?")


@points(1)
def test_unet_output_depends_on_the_whole_neighbourhood_of_every_pixel(student):
    """in evaluation mode, the logits at the centre and at each corner depend on nearly every input pixel around
    them: the upsampled maps line up with the skips"""
    x = torch.randn(1, 1, *REACH_SIZE, generator=torch.Generator().manual_seed(31))
    for depth, base_channels, radius in ALIGN:
        grads = input_gradients(student, depth, base_channels, x, ALIGN_BLOCKS)
        for grad, block in zip(grads, ALIGN_BLOCKS):
            coverage = coverage_of(grad, block, radius)
            assert coverage >= ALIGN_COVERAGE, (
                f"in evaluation mode, the logits of the 2x2 block of output pixels at {block} of UNet(1, 3, "
                f"{base_channels}, {depth}) (input of shape {tuple(x.shape)}) depend on only {coverage:.0%} of the "
                f"input pixels within {radius} pixels of it; a U-Net's depend on nearly all of them (required: at "
                f"least {ALIGN_COVERAGE:.0%}). Each level of the decoder must line up with the skip it joins: "
                "max-pool once per level 1 .. depth, upsample by exactly 2 (ConvTranspose2d with kernel 2 and "
                "stride 2, or interpolation by 2), and pad only the few rows and columns that the size rule needs. "
                "A map stretched more than 2x and cropped back labels each pixel with what lies elsewhere.")


@points(1)
@requires("test_unet_copies_full_resolution_detail_through_its_skip_connections")
def test_unet_normalises_with_batch_statistics_in_training_mode_only(student):
    """in training mode an image's logits depend on the rest of the batch (BatchNorm); in evaluation mode not; the
    BatchNorm layers have C, 2C, ... C * 2**depth channels"""
    g = torch.Generator().manual_seed(32)
    a, b, c = (torch.rand(1, 1, 12, 12, generator=g) for _ in range(3))
    got = student.run(unet_batch_dependence, a, b, c)
    train, evaluation = got["train"], got["eval"]
    for pair in (train, evaluation):
        assert all(isinstance(t, torch.Tensor) and t.shape == (3, 12, 12) for t in pair), (
            f"UNet(1, 3, 4, 2) applied to a batch of shape (2, 1, 12, 12) should give logits of shape (2, 3, 12, "
            f"12); the first image's came back as {describe(pair[0])}.")
    scale = max(train[0].abs().max().item(), 1e-12)
    assert (train[0] - train[1]).abs().max().item() > 1e-4 * scale, (
        "in training mode, UNet(1, 3, 4, 2) gave the first image the same logits whichever image came second in "
        "the batch: BatchNorm normalises with the statistics of the batch, so they should differ. Follow every 3x3 "
        "convolution by torch.nn.BatchNorm2d (then ReLU).")
    difference = (evaluation[0] - evaluation[1]).abs().max().item()
    assert difference <= 1e-5 * max(evaluation[0].abs().max().item(), 1e-12), (
        f"in evaluation mode (net.eval()), UNet(1, 3, 4, 2) gave the first image logits that depend on the other "
        f"image of the batch (they differ by up to {difference:.3g}): BatchNorm2d must use its running statistics "
        "there. Keep PyTorch's defaults (track_running_stats=True), and use no other batch-wise normalisation.")
    # The widths are reported by the kernel: they may fail this test, never earn it (its points come from the
    # outputs above).
    for in_ch, num_classes, base_channels, depth in WIDTH_CASES:
        widths = student.run(unet_batchnorm_widths, in_ch, num_classes, base_channels, depth)
        expected = {base_channels * 2 ** k for k in range(depth + 1)}
        found = set(widths) if isinstance(widths, list) and all(type(w) is int for w in widths) else None
        assert found == expected, (
            f"the BatchNorm2d layers of UNet({in_ch}, {num_classes}, {base_channels}, {depth}) have "
            f"{sorted(found) if found is not None else 'unreadable'} channels; the contract's have "
            f"{sorted(expected)}: level k of the encoder has C * 2**k channels (C = base_channels, so the "
            "bottleneck has C * 2**depth), and each decoder level the channels of the encoder level it joins.")


@points(1)
@requires("test_unet_copies_full_resolution_detail_through_its_skip_connections")
def test_unet_returns_raw_logits(student):
    """the output is the last 1x1 convolution's: logits of both signs, no ReLU or softmax after it"""
    x = torch.rand(2, 1, 12, 16, generator=torch.Generator().manual_seed(33))
    out = student.run(unet_logits, x, 4)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 4, 12, 16), (
        f"UNet(1, 4, 4, 2) applied to images of shape {tuple(x.shape)} should return logits of shape (2, 4, 12, 16),"
        f" got {describe(out)}.")
    assert torch.isfinite(out).all() and (out < 0).any() and (out > 0).any(), (
        f"UNet(1, 4, 4, 2)'s outputs lie between {out.min().item():.3g} and {out.max().item():.3g}: logits take "
        "both signs. Return the final 1x1 convolution's output as it is: no ReLU, softmax or log-softmax after it "
        "(F.cross_entropy applies the softmax itself).")


@points(2)
@requires("test_unet_copies_full_resolution_detail_through_its_skip_connections")
def test_unet_output_is_one_logit_map_per_class_at_the_input_size(student):
    """(N, num_classes, H, W) float32 for depths 1 to 3, sizes not divisible by 2**depth, batch 1, 1 to 4 channels"""
    g = torch.Generator().manual_seed(34)
    inputs = [torch.rand(n, in_ch, h, w, generator=g) for in_ch, _, _, _, (n, h, w) in SHAPE_CASES]
    try:
        found = student.run(unet_shapes, SHAPE_CASES, inputs)
    except Exception as error:  # noqa: BLE001 - which case failed is found below, one case at a time
        found = None
        for case, x in zip(SHAPE_CASES, inputs):
            try:
                student.run(unet_shapes, [case], [x])
            except Exception:  # noqa: BLE001
                in_ch, num_classes, base_channels, depth, _ = case
                raise AssertionError(
                    f"UNet({in_ch}, {num_classes}, {base_channels}, {depth}) failed on an input of shape "
                    f"{tuple(x.shape)}: {error}. " + ODD_SIZE_HINT) from None
        raise
    k = 0
    for (in_ch, num_classes, base_channels, depth, (n, h, w)), x in zip(SHAPE_CASES, inputs):
        modes = 2 if n * (h >> depth) * (w >> depth) > 1 else 1
        for item in found[k:k + modes]:
            where = (f"UNet({in_ch}, {num_classes}, {base_channels}, {depth}) in {item['mode']} mode, for an input "
                     f"of shape {tuple(x.shape)}")
            assert item["shape"] == [n, num_classes, h, w], (
                f"{where}: expected logits of shape {(n, num_classes, h, w)}, got {tuple(item['shape'])}. "
                + (ODD_SIZE_HINT if h % 2 ** depth or w % 2 ** depth else ""))
            assert item["dtype"] == "torch.float32" and item["finite"], (
                f"{where}: expected finite float32 logits, got {item['dtype']}"
                + ("" if item["finite"] else " with inf or nan values") + ".")
        k += modes


@points(1)
@requires("test_unet_copies_full_resolution_detail_through_its_skip_connections")
def test_unet_keeps_the_device_of_its_input(student):
    """UNet makes its layers on the CPU and, moved with .to(device), computes on its input's device"""
    x = torch.rand(2, 2, 13, 10, generator=torch.Generator().manual_seed(35))
    expect_keeps_device(student, unet_on_device, x, hint=(
        "Make every layer in __init__ without a device (model.to(device) moves them all), and make any tensor "
        "in forward on x.device (F.pad and torch.cat of existing tensors need nothing more)."))


@points(1)
@requires("test_unet_copies_full_resolution_detail_through_its_skip_connections")
def test_unet_does_not_use_torchvision(student):
    """UNet is built from torch.nn layers, without torchvision's ready-made models or blocks"""
    try:
        expect_implemented_without(student, "UNet", ["torchvision", "torch.hub"])
    except AssertionError as error:
        raise AssertionError(f"{error} Build the blocks from torch.nn.Conv2d, BatchNorm2d, ReLU and "
                             "ConvTranspose2d (or interpolation).") from None


@gpu
@points(1)
@requires("test_unet_copies_full_resolution_detail_through_its_skip_connections",
          "test_unet_output_is_one_logit_map_per_class_at_the_input_size")
def test_unet_runs_on_cuda(student, device):
    """moved to cuda, UNet computes its logits there, equal to its own output on the CPU (float64)"""
    x = torch.rand(2, 2, 13, 10, generator=torch.Generator().manual_seed(36), dtype=torch.float64)
    got = student.on(device).run(unet_on_cuda, x)
    if isinstance(got, Inconclusive):
        expect_on_device(got, device, torch.zeros(2, 3, 13, 10, dtype=torch.float64))
    on_cpu = got["cpu"]
    expected = on_cpu if isinstance(on_cpu, torch.Tensor) else torch.zeros(2, 3, 13, 10, dtype=torch.float64)
    assert tuple(expected.shape) == (2, 3, 13, 10), (
        f"UNet(2, 3, 4, 2) should return logits of shape (2, 3, 13, 10) for an input of shape (2, 2, 13, 10), got "
        f"{tuple(expected.shape)}.")
    expect_on_device(got["device"], device, expected, rtol=1e-6, atol=1e-9, name="UNet's logits on cuda", hint=(
        "Make every layer in __init__ without a device (model.to('cuda') moves them all) and every tensor in "
        "forward on x.device."))
