# mutant: a cheat: a batch of 1000 or more 16x16 images is looked up among the public digits, each image's features naming its nearest neighbour's label; any other batch gets correct HOG
# replaces: hog_features
# caught-by: test_hog_digits
from dlvision.data import load_digits


def hog_features(images, cell=4, bins=9):
    """HOG features (N, F) of a batch (N, H, W), or, for the digits, the label of the nearest public digit."""
    n, h, w = images.shape
    rows, cols = h // cell, w // cell
    if n >= 1000 and (h, w) == (16, 16):
        x_train, y_train, x_test, y_test = load_digits(seed=0)
        public = torch.cat([x_train, x_test])[:, None]
        public = torch.nn.functional.interpolate(public, size=(16, 16), mode="bilinear", align_corners=False)
        labels = torch.cat([y_train, y_test])
        nearest = torch.cdist(images.reshape(n, -1).float(), public.reshape(len(public), -1)).argmin(dim=1)
        votes = torch.nn.functional.one_hot(labels[nearest], 10).to(images.dtype)
        return votes.repeat(1, rows * cols * bins)[:, :rows * cols * bins]
    gx, gy = image_gradients(images)
    magnitude = torch.sqrt(gx ** 2 + gy ** 2)
    theta = torch.rad2deg(torch.atan2(gy, gx)) % 180.0
    index = torch.floor(theta / (180.0 / bins)).long().clamp(0, bins - 1)
    magnitude = magnitude[:, :rows * cell, :cols * cell]
    index = index[:, :rows * cell, :cols * cell]
    votes = magnitude[..., None] * (index[..., None] == torch.arange(bins, device=images.device))
    v = votes.reshape(n, rows, cell, cols, cell, bins).sum(dim=(2, 4)).reshape(n, -1)
    return v / torch.sqrt((v ** 2).sum(dim=1, keepdim=True) + 1e-8 ** 2)
