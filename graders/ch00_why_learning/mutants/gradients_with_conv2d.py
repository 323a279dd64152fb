# mutant: correct values, but computed with the off-limits F.conv2d
# replaces: image_gradients
# caught-by: test_gradients
def image_gradients(images):
    """Sobel gradients (gx, gy) of a batch (N, H, W), zero padding 1."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=images.dtype,
                      device=images.device)
    x = images[:, None]
    return F.conv2d(x, kx[None, None], padding=1)[:, 0], F.conv2d(x, kx.T[None, None], padding=1)[:, 0]
