# mutant: the border is padded by repeating the edge pixels instead of zeros
# replaces: image_gradients
# caught-by: test_gradients
def image_gradients(images):
    """Sobel gradients (gx, gy) of a batch (N, H, W), padding 1."""
    n, h, w = images.shape
    padded = torch.cat([images[:, :1], images, images[:, -1:]], dim=1)
    padded = torch.cat([padded[:, :, :1], padded, padded[:, :, -1:]], dim=2)

    def at(dy, dx):
        return padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return gx, gy
