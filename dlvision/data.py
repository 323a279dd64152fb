"""Small bundled data sets for the assignments: generated on the fly, nothing is downloaded.

The point-cloud generators (moons, spirals, the ring of Gaussians) are deterministic for a given ``seed``, or draw
from ``generator`` (a ``torch.Generator``) when one is given, and return ``(X, y)`` with ``X`` a float32 tensor of
shape (n, 2) and ``y`` an int64 tensor of shape (n,) holding class indices, both on the CPU.
The digits are scikit-learn's bundled scans, at 8x8 or upsampled to 16x16, with :func:`jitter` for shifted and
rotated variants. :func:`make_shapes` draws images of circles, squares and triangles with their segmentation masks.
"""
from __future__ import annotations

import math

import torch


def _generator(seed: int, generator: torch.Generator | None = None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(int(seed))


def _split(n: int, classes: int) -> list[int]:
    """How many of ``n`` points each class gets (as even as possible, earlier classes first)."""
    return [n // classes + (1 if c < n % classes else 0) for c in range(classes)]


def make_moons(n: int = 400, noise: float = 0.1, seed: int = 0,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles, the classic "not linearly separable" toy problem.

    Class 0 is the upper moon (centre (0, 0), radius 1), class 1 the lower one (centre (1, 0.5)).
    Gaussian noise of standard deviation ``noise`` is added to both coordinates.
    Returns ``X`` float32 (n, 2) and ``y`` int64 (n,), shuffled.
    """
    g = _generator(seed, generator)
    n0, n1 = _split(n, 2)
    t0 = torch.rand(n0, generator=g, dtype=torch.float64) * math.pi
    t1 = torch.rand(n1, generator=g, dtype=torch.float64) * math.pi
    upper = torch.stack([torch.cos(t0), torch.sin(t0)], dim=1)
    lower = torch.stack([1.0 - torch.cos(t1), 0.5 - torch.sin(t1)], dim=1)
    X = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    y = torch.cat([torch.zeros(n0, dtype=torch.int64), torch.ones(n1, dtype=torch.int64)])
    order = torch.randperm(n, generator=g)
    return X[order].float(), y[order]


def make_spirals(n: int = 400, classes: int = 2, turns: float = 1.0, noise: float = 0.05, seed: int = 0,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``classes`` interleaved spiral arms around the origin, radius growing from 0 to 1.

    Arm ``c`` is rotated by ``2 pi c / classes``; ``turns`` is how many full turns each arm makes.
    Gaussian noise of standard deviation ``noise`` is added to both coordinates.
    Returns ``X`` float32 (n, 2) and ``y`` int64 (n,) with values in ``0 .. classes - 1``, shuffled.
    """
    g = _generator(seed, generator)
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


def make_ring(n: int = 512, modes: int = 8, radius: float = 2.0, std: float = 0.02, seed: int = 0,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixture of ``modes`` Gaussians of standard deviation ``std`` whose means lie evenly on a circle of
    ``radius`` around the origin (mode ``k`` at angle ``2 pi k / modes``): the classic test of mode collapse.

    Each point picks its mode uniformly at random. Returns ``X`` float32 (n, 2) and ``y`` int64 (n,), the modes.
    """
    g = _generator(seed, generator)
    y = torch.randint(0, modes, (n,), generator=g)
    angle = 2 * math.pi * y.double() / modes
    means = radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return (means + std * torch.randn(n, 2, generator=g, dtype=torch.float64)).float(), y


def ring_modes(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The means of :func:`make_ring`'s mixture, float64 (modes, 2)."""
    angle = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return radius * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


#: make_shapes's classes, in mask values: 0 is the background.
SHAPES = ("background", "circle", "square", "triangle")


def make_shapes(n: int = 256, size: int = 32, seed: int = 0, generator: torch.Generator | None = None, *,
                max_shapes: int = 3, contrast: tuple[float, float] = (0.3, 0.5), texture: float = 0.2,
                noise: float = 0.08) -> tuple[torch.Tensor, torch.Tensor]:
    """Grey images of circles, squares and triangles on textured backgrounds, with their segmentation masks.

    Each image has a smooth random background (mean 0.5, variations up to about ``texture``), then 1 to
    ``max_shapes`` shapes of random class, position and size (radius ``size/8`` to ``size/4``; squares are
    axis-aligned, triangles point up), each brighter or darker than 0.5 by a random amount in ``contrast``. Later
    shapes cover earlier ones, in the image and in the mask. Gaussian noise of standard deviation ``noise`` is added.
    Brightness alone therefore does not tell the classes apart: only the shape does.

    Returns ``images`` float32 (n, 1, size, size) and ``masks`` int64 (n, size, size) with values in 0..3, the
    index into :data:`SHAPES` (0 background, 1 circle, 2 square, 3 triangle).
    """
    import torch.nn.functional as F

    g = _generator(seed, generator)
    coarse = torch.rand(n, 1, max(2, size // 8), max(2, size // 8), generator=g, dtype=torch.float64)
    images = 0.5 + texture * 2 * (F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True) - 0.5)
    masks = torch.zeros(n, size, size, dtype=torch.int64)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float64) + 0.5,
                            torch.arange(size, dtype=torch.float64) + 0.5, indexing="ij")
    for i in range(n):
        count = int(torch.randint(1, max_shapes + 1, (1,), generator=g))
        for _ in range(count):
            kind = int(torch.randint(1, len(SHAPES), (1,), generator=g))
            r, cy, cx, level, sign = torch.rand(5, generator=g, dtype=torch.float64).tolist()
            r = size / 8 + r * size / 8
            cy, cx = r + cy * (size - 2 * r), r + cx * (size - 2 * r)
            if kind == 1:
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
            elif kind == 2:
                inside = ((yy - cy).abs() <= r * 0.85) & ((xx - cx).abs() <= r * 0.85)
            else:  # apex at the top, base at the bottom: |x - cx| grows with the depth below the apex
                inside = (yy >= cy - r) & (yy <= cy + r) & ((xx - cx).abs() <= (yy - (cy - r)) / 2)
            amount = contrast[0] + level * (contrast[1] - contrast[0])
            images[i, 0][inside] = 0.5 + (amount if sign < 0.5 else -amount)
            masks[i][inside] = kind
    images = images + noise * torch.randn(images.shape, generator=g, dtype=torch.float64)
    return images.clamp(0, 1).float(), masks


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
