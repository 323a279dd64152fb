"""Small bundled data sets for the assignments: generated on the fly, nothing is downloaded.

The point-cloud generators (moons, spirals) are deterministic for a given ``seed`` and return ``(X, y)`` with ``X``
a float32 tensor of shape (n, 2) and ``y`` an int64 tensor of shape (n,) holding class indices, both on the CPU.
The digits are scikit-learn's bundled scans, at 8x8 or upsampled to 16x16, with :func:`jitter` for shifted and
rotated variants.
"""
from __future__ import annotations

import math

import torch


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _split(n: int, classes: int) -> list[int]:
    """How many of ``n`` points each class gets (as even as possible, earlier classes first)."""
    return [n // classes + (1 if c < n % classes else 0) for c in range(classes)]


def make_moons(n: int = 400, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles, the classic "not linearly separable" toy problem.

    Class 0 is the upper moon (centre (0, 0), radius 1), class 1 the lower one (centre (1, 0.5)).
    Gaussian noise of standard deviation ``noise`` is added to both coordinates.
    Returns ``X`` float32 (n, 2) and ``y`` int64 (n,), shuffled.
    """
    g = _generator(seed)
    n0, n1 = _split(n, 2)
    t0 = torch.rand(n0, generator=g, dtype=torch.float64) * math.pi
    t1 = torch.rand(n1, generator=g, dtype=torch.float64) * math.pi
    upper = torch.stack([torch.cos(t0), torch.sin(t0)], dim=1)
    lower = torch.stack([1.0 - torch.cos(t1), 0.5 - torch.sin(t1)], dim=1)
    X = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    order = torch.randperm(n, generator=g)
    return X[order].float(), y[order]


def make_spirals(n: int = 400, classes: int = 2, turns: float = 1.0, noise: float = 0.05,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes`` interleaved spiral arms around the origin, radius growing from 0 to 1.

    Arm ``c`` is rotated by ``2 pi c / classes``; ``turns`` is how many full turns each arm makes.
    Gaussian noise of standard deviation ``noise`` is added to both coordinates.
    Returns ``X`` float32 (n, 2) and ``y`` int64 (n,) with values in ``0 .. classes - 1``, shuffled.
    """
    g = _generator(seed)
    xs, ys = [], []
    for c, m in enumerate(_split(n, classes)):
        r = torch.rand(m, generator=g, dtype=torch.float64)
        angle = 2 * math.pi * (turns * r + c / classes)
        xs.append(torch.stack([r * torch.cos(angle), r * torch.sin(angle)], dim=1))
        ys.append(torch.full((m,), c, dtype=torch.int64))
    X = torch.cat(xs) + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.cat(ys)
    order = torch.randperm(n, generator=g)
    return X[order].float(), y[order]


def load_digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-learn's bundled 1797 handwritten digits (8x8, real scans), split into train and test.

    Returns ``X_train, y_train, X_test, y_test``: images float32 of shape (n, 8, 8) scaled to [0, 1], labels
    int64 of shape (n,) in 0..9. The split is a shuffle with ``seed``; ``test_fraction`` of the
    images go to the test set.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    X = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=_generator(seed))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return X[train], y[train], X[test], y[test]


def load_digits_16(test_fraction: float = 0.25, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """scikit-learn's digits upsampled to 16x16 (bilinear), split as :func:`load_digits` does.

    Returns ``X_train, y_train, X_test, y_test``: images float32 of shape (n, 16, 16) in [0, 1], labels int64 (n,).
    """
    X_train, y_train, X_test, y_test = load_digits(test_fraction, seed)
    return upsample(X_train, 16), y_train, upsample(X_test, 16), y_test


def upsample(images: torch.Tensor, size: int) -> torch.Tensor:
    """Images (n, h, w) resized to (n, size, size) with bilinear interpolation (corners aligned), same dtype."""
    import torch.nn.functional as F

    return F.interpolate(images[:, None], size=(size, size), mode="bilinear", align_corners=True)[:, 0]


def jitter(images: torch.Tensor, *, max_shift: int = 0, max_degrees: float = 0.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image (n, h, w) rotated by a random angle in [-max_degrees, max_degrees] about its centre, then shifted
    by a random whole number of pixels in [-max_shift, max_shift] in each direction; uncovered pixels are 0.
    Random numbers come from ``generator`` (a torch.Generator), so a seed gives the same images."""
    import torch.nn.functional as F

    n, h, w = images.shape
    angles = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(max_degrees)
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator)
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n, dtype=torch.float64)], dim=1),
                         torch.stack([sin, cos, torch.zeros(n, dtype=torch.float64)], dim=1)], dim=1)
    grid = F.affine_grid(theta.to(images.dtype), (n, 1, h, w), align_corners=False)
    rotated = F.grid_sample(images[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    shifted = torch.zeros_like(rotated)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
        xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
        shifted[i, yd, xd] = rotated[i, ys, xs]
    return shifted
