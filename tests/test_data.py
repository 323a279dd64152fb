"""The bundled data generators: deterministic, the documented shapes, dtypes and classes."""
from __future__ import annotations

import torch

from dlvision import data


def test_point_clouds_repeat_for_a_seed_and_for_a_generator_state():
    for make in (data.make_moons, data.make_spirals, data.make_ring):
        X, y = make(200, seed=3)
        assert X.shape == (200, 2) and X.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(X, make(200, seed=3)[0]) and not torch.equal(X, make(200, seed=4)[0])
        g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
        assert torch.equal(make(50, generator=g1)[0], make(50, generator=g2)[0])


def test_ring_points_lie_near_their_modes():
    X, y = data.make_ring(1000, modes=8, radius=2.0, std=0.02, seed=0)
    distance = (X.double() - data.ring_modes(8, 2.0)[y]).norm(dim=1)
    assert distance.max() < 0.02 * 6 and y.unique().tolist() == list(range(8))


def test_shapes_masks_cover_every_class_and_images_stay_in_range():
    images, masks = data.make_shapes(64, size=24, seed=1)
    assert images.shape == (64, 1, 24, 24) and images.dtype == torch.float32
    assert masks.shape == (64, 24, 24) and masks.dtype == torch.int64
    assert 0 <= images.min() and images.max() <= 1
    assert masks.unique().tolist() == list(range(len(data.SHAPES)))
    assert torch.equal(masks, data.make_shapes(64, size=24, seed=1)[1])


def test_shapes_are_not_told_apart_by_brightness():
    images, masks = data.make_shapes(1024, size=32, seed=0, noise=0.0)
    means = [images[:, 0][masks == k].mean().item() for k in range(1, len(data.SHAPES))]
    assert all(abs(m - 0.5) < 0.06 for m in means), means  # as bright as the background, on average
