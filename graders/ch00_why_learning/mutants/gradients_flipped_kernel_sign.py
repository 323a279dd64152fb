# mutant: a true convolution (kernel flipped) instead of cross-correlation: both gradients have the wrong sign
# replaces: image_gradients
# caught-by: test_gradients
def image_gradients(images):
    """Sobel gradients (gx, gy) of a batch (N, H, W), zero padding 1."""
    n, h, w = images.shape
    padded = torch.zeros(n, h + 2, w + 2, dtype=images.dtype, device=images.device)
    padded[:, 1:-1, 1:-1] = images

    def at(dy, dx):
        return padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    gx = (at(-1, -1) + 2 * at(0, -1) + at(1, -1)) - (at(-1, 1) + 2 * at(0, 1) + at(1, 1))
    gy = (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1)) - (at(1, -1) + 2 * at(1, 0) + at(1, 1))
    return gx, gy
