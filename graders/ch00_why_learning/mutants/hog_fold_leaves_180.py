# mutant: orientation folded by adding 180 to negative angles, so a gradient pointing left (exactly 180) votes in the last bin, not bin 0
# replaces: hog_features
# caught-by: test_hog
def hog_features(images, cell=4, bins=9):
    """HOG features (N, F) of a batch (N, H, W)."""
    n, h, w = images.shape
    rows, cols = h // cell, w // cell
    gx, gy = image_gradients(images)
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)
    theta = torch.rad2deg(torch.atan2(gy, gx))
    theta = torch.where(theta < 0, theta + 180.0, theta)
    index = torch.floor(theta / (180.0 / bins)).long().clamp(0, bins - 1)
    magnitude = magnitude[:, :rows * cell, :cols * cell]
    index = index[:, :rows * cell, :cols * cell]
    votes = magnitude[..., None] * (index[..., None] == torch.arange(bins, device=images.device))
    v = votes.reshape(n, rows, cell, cols, cell, bins).sum(dim=(2, 4)).reshape(n, -1)
    return v / torch.sqrt((v ** 2).sum(dim=1, keepdim=True) + 1e-8 ** 2)
