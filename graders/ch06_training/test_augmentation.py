"""Hidden tests for random_crop_flip (Chapter 6, section 3).

The contract fixes the random draws (tops, then lefts, then flips, from the caller's generator), so the grader
replays them here and expects exactly the stated crops. Two more tests judge by behaviour alone, on fresh draws:
every output is a shifted window of the zero-padded image, mirrored or not, with every shift in [-padding, padding]
used, and about half of the images are mirrored left-right.
"""
import torch

from dlvision.grading import expect_close, expect_keeps_device, fresh_generator, fresh_seed, points, requires

DRAW_HINT = ("Draw tops = torch.randint(0, 2 * padding + 1, (N,), generator=generator), then lefts the same way, then "
             "flips = torch.rand(N, generator=generator) < 0.5; cut the H x W window at (tops[i], lefts[i]) of the "
             "zero-padded image, then mirror it left-right (reverse the last axis) where flips[i].")


#: With padding 0 and 1000 images, the generator seeded TIE_SEED draws u = 0.5 exactly for image 181 (searched offline).
TIE_SEED = 11843


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def crops(images, padding, seed, calls):
    """`calls` consecutive calls of random_crop_flip with one generator seeded `seed`."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [random_crop_flip(images, padding, g) for _ in range(calls)]


def crops_and_input(images, padding, seed):
    """One call; the output and the input as it is after the call."""
    import torch

    out = random_crop_flip(images, padding, torch.Generator().manual_seed(seed))
    return {"out": out, "images": images}


def crop_on_device(images, padding, seed, device):
    import torch

    return random_crop_flip(images, padding, torch.Generator().manual_seed(seed))


# --- helpers on the trusted side -------------------------------------------------------------------------------

def replay(images, padding, seed, calls):
    """The contract's crops for the same calls with the same generator."""
    g = torch.Generator().manual_seed(seed)
    N, C, H, W = images.shape
    outputs = []
    for _ in range(calls):
        tops = torch.randint(0, 2 * padding + 1, (N,), generator=g)
        lefts = torch.randint(0, 2 * padding + 1, (N,), generator=g)
        flips = torch.rand(N, generator=g) < 0.5
        padded = torch.zeros(N, C, H + 2 * padding, W + 2 * padding, dtype=images.dtype)
        padded[:, :, padding:padding + H, padding:padding + W] = images
        crops = [padded[i, :, t:t + H, l:l + W] for i, (t, l) in enumerate(zip(tops.tolist(), lefts.tolist()))]
        outputs.append(torch.stack([c.flip(-1) if f else c for c, f in zip(crops, flips.tolist())]))
    return outputs


def candidates(image, padding):
    """Every window the contract allows for one (C, H, W) image: {(top, left, flipped): window}."""
    C, H, W = image.shape
    padded = torch.zeros(C, H + 2 * padding, W + 2 * padding, dtype=image.dtype)
    padded[:, padding:padding + H, padding:padding + W] = image
    found = {}
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            window = padded[:, top:top + H, left:left + W]
            found[(top, left, False)], found[(top, left, True)] = window, window.flip(-1)
    return found


def expect_batch(got, images, label):
    assert isinstance(got, torch.Tensor) and got.shape == images.shape, (
        f"{label}: random_crop_flip should return a tensor of the input's shape {tuple(images.shape)}, got "
        f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}.")


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_random_crop_flip_replays_the_stated_draws(student):
    """random_crop_flip gives exactly the stated crops and flips (padding 0 to 4, one image or one channel, an image
    smaller than its padding, float32 and float64, two calls with one generator, a flip draw of exactly 0.5)"""
    g = torch.Generator().manual_seed(1)
    for k, (shape, padding, dtype) in enumerate((((5, 1, 8, 8), 2, torch.float32), ((1, 3, 5, 7), 1, torch.float64),
                                                 ((6, 2, 4, 6), 3, torch.float32), ((4, 1, 6, 6), 0, torch.float32),
                                                 ((3, 3, 16, 16), 4, torch.float64))):
        images = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype) + 0.5
        seed = 200 + k
        got = student.run(crops, images, padding, seed, 2)
        for call, (mine, expected) in enumerate(zip(got, replay(images, padding, seed, 2)), start=1):
            label = f"call {call} on images of shape {shape}, {str(dtype)[6:]}, padding {padding}"
            expect_batch(mine, images, label)
            expect_close(mine, expected, rtol=0, atol=0, name=label, hint=DRAW_HINT)
    # A tie: with this seed the flip draw of image 181 is exactly 0.5, which the contract does not mirror (u < 0.5).
    images = torch.rand(1000, 1, 2, 3, generator=g) + 0.5
    (mine,) = student.run(crops, images, 0, TIE_SEED, 1)
    (expected,) = replay(images, 0, TIE_SEED, 1)
    expect_batch(mine, images, "1000 images of 2 x 3, padding 0")
    expect_close(mine, expected, rtol=0, atol=0, name="1000 images of 2 x 3, padding 0, one of them drawn u = 0.5",
                 hint="Mirror where u < 0.5: an image whose u is exactly 0.5 stays as it is. " + DRAW_HINT)


@points(1)
def test_random_crop_flip_returns_shifted_windows_of_the_zero_padded_image(student):
    """on fresh draws, every output is a window of the zero-padded image (mirrored or not), and every shift from
    -padding to +padding occurs, in both directions"""
    g = fresh_generator()
    padding, n = 2, 500
    images = torch.rand(n, 1, 5, 6, generator=g, dtype=torch.float64) + 0.5
    (got,) = student.run(crops, images, padding, fresh_seed(), 1)
    expect_batch(got, images, f"random_crop_flip(images of shape {tuple(images.shape)}, padding={padding})")
    tops, lefts = [], []
    for i in range(n):
        match = next((key for key, window in candidates(images[i], padding).items() if torch.equal(window, got[i])),
                     None)
        assert match is not None, (
            f"output image {i} of random_crop_flip(padding={padding}) is not a {images.shape[2]} x {images.shape[3]} "
            "window of the image padded with zeros (mirrored left-right or not). " + DRAW_HINT)
        tops.append(match[0])
        lefts.append(match[1])
    for axis, offsets in (("top", tops), ("left", lefts)):
        counts = [offsets.count(v) for v in range(2 * padding + 1)]
        assert min(counts) >= 50, (
            f"over {n} images with padding {padding}, the window's {axis} offsets 0..{2 * padding} occurred "
            f"{counts} times; each should occur about {n // (2 * padding + 1)} times (uniform over the "
            f"{2 * padding + 1} values of torch.randint(0, 2 * padding + 1, ...)).")


@points(1)
def test_random_crop_flip_mirrors_half_of_the_images_left_right(student):
    """with padding 0, every output is its image or the image mirrored left-right, mirrored for 50% +- 4%"""
    g = fresh_generator()
    n = 4000
    images = torch.rand(n, 2, 3, 4, generator=g) + 0.5
    (got,) = student.run(crops, images, 0, fresh_seed(), 1)
    expect_batch(got, images, f"random_crop_flip(images of shape {tuple(images.shape)}, padding=0)")
    same = (got == images).flatten(1).all(1)
    mirrored = (got == images.flip(-1)).flatten(1).all(1)
    assert bool((same | mirrored).all()), (
        "with padding 0, each output image should be its input image, or the input mirrored left-right (its last "
        "axis, W, reversed); some are neither (flipped up-down? mixed up between images?).")
    rate = mirrored.double().mean().item()
    assert abs(rate - 0.5) < 0.04, (
        f"{rate:.1%} of {n} images were mirrored; a random horizontal flip mirrors each image with probability 1/2 "
        "(flips = torch.rand(N, generator=generator) < 0.5).")


@points(1)
@requires("test_random_crop_flip_replays_the_stated_draws")
def test_random_crop_flip_leaves_its_input_unchanged(student):
    """random_crop_flip returns new crops and leaves the images it was given as they were"""
    images = torch.rand(4, 2, 5, 5, generator=torch.Generator().manual_seed(2)) + 0.5
    got = student.run(crops_and_input, images, 2, 11)
    expect_batch(got["out"], images, "random_crop_flip(images of shape (4, 2, 5, 5), padding=2)")
    expect_close(got["images"], images, rtol=0, atol=0, name="the images after random_crop_flip",
                 hint="Pad into a new tensor (images.new_zeros, or F.pad) and never write into the input.")


@points(1)
@requires("test_random_crop_flip_replays_the_stated_draws")
def test_random_crop_flip_keeps_the_device_of_its_input(student):
    """for images on a CUDA device, the crops are made there (the draws stay on the generator's CPU)"""
    images = torch.rand(3, 2, 6, 5, generator=torch.Generator().manual_seed(3))
    expect_keeps_device(student, crop_on_device, images, 2, 5,
                        hint="Make the padded batch on images.device (images.new_zeros(...)), and move index tensors "
                             "drawn on the CPU to images.device before indexing with them.")
