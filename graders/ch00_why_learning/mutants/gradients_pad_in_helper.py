# mutant: correct values, but the zero padding comes from the off-limits F.pad, through an alias in a helper
# replaces: image_gradients
# caught-by: test_gradients
zero_pad = F.pad


def padded_batch(images):
    """The batch with one pixel of zeros on every side."""
    return zero_pad(images, (1, 1, 1, 1))


def image_gradients(images):
    """Sobel gradients (gx, gy) of a batch (N, H, W), zero padding 1."""
    n, h, w = images.shape
    padded = padded_batch(images)

    def at(dy, dx):
        return padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return gx, gy
