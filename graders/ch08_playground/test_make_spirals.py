"""Hidden tests for make_spirals (Chapter 8, section 1).

The contract leaves the order of the random draws to the student, so these tests judge the data by its
properties, computed here from what make_spirals returns for arguments and generator seeds chosen here: the
labels exactly; without noise, every point on its arm exactly (the stated angle for its radius); the radii's
distribution (uniform on [0, 1)); the noise's standard deviation, measured as the distance of each point to its
own arm; determinism under a generator and new data from a generator that has moved on. The statistical bounds
are explained in THRESHOLDS.md.
"""
import math

import torch

from dlvision.grading import expect_close, expect_implemented_without, points, requires

GEOMETRY = ("a point of class c: t uniform in [0, 1), angle a = 2 pi (t + c / num_classes), "
            "x = t (cos a, sin a) + noise * (e1, e2).")
#: The largest distance allowed between a noise-free point and the stated point for its radius (float32 rounding
#: of a correct answer is about 1e-6; see THRESHOLDS.md).
ARM_ATOL = 1e-5
#: Kolmogorov-Smirnov bound for the radii of 2000 noise-free points per class against U(0, 1) (THRESHOLDS.md).
KS_BOUND = 0.06
#: The measured noise over the stated noise must lie in this range (THRESHOLDS.md).
NOISE_RATIO = (0.85, 1.15)


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def spirals(n_per_class, num_classes, noise, seed):
    """make_spirals with a generator seeded here."""
    import torch

    return make_spirals(n_per_class, num_classes, noise, torch.Generator().manual_seed(seed))


def spirals_with_the_global_seed_changed(n_per_class, num_classes, noise, seed):
    """Twice from a generator seeded alike, with PyTorch's global random state changed in between."""
    import torch

    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(make_spirals(n_per_class, num_classes, noise, torch.Generator().manual_seed(seed)))
    return runs


def spirals_from_moving_generators(n_per_class, num_classes, noise, seeds):
    """Two calls with one generator (the second call finds it moved on), then one call with another seed."""
    import torch

    g = torch.Generator().manual_seed(seeds[0])
    first, second = make_spirals(n_per_class, num_classes, noise, g), make_spirals(n_per_class, num_classes, noise, g)
    other = make_spirals(n_per_class, num_classes, noise, torch.Generator().manual_seed(seeds[1]))
    return [first, second, other]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def expected_labels(n_per_class, num_classes):
    return torch.tensor([c for c in range(num_classes) for _ in range(n_per_class)], dtype=torch.int64)


def check_output(got, n_per_class, num_classes):
    """(X, y) of the stated types, shapes and labels; returns them."""
    call = f"make_spirals({n_per_class}, {num_classes}, ...)"
    assert isinstance(got, (tuple, list)) and len(got) == 2, (
        f"{call} should return a pair (X, y), got {type(got).__name__}"
        + (f" of length {len(got)}." if isinstance(got, (tuple, list)) else "."))
    X, y = got
    n = n_per_class * num_classes
    assert isinstance(X, torch.Tensor) and X.dtype == torch.float32 and tuple(X.shape) == (n, 2), (
        f"{call}: X should be a float32 tensor of shape ({n}, 2), got "
        + (f"{X.dtype} of shape {tuple(X.shape)}." if isinstance(X, torch.Tensor) else f"a {type(X).__name__}.")
        + (" Convert with .float() at the end if you compute in float64." if isinstance(X, torch.Tensor)
           and X.dtype == torch.float64 else ""))
    assert isinstance(y, torch.Tensor) and y.dtype == torch.int64 and tuple(y.shape) == (n,), (
        f"{call}: y should be an int64 tensor of shape ({n},), got "
        + (f"{y.dtype} of shape {tuple(y.shape)}." if isinstance(y, torch.Tensor) else f"a {type(y).__name__}."))
    return X, y


def arm_points(r, labels, num_classes, turn=2 * math.pi, rotation=1.0, swap=False):
    """The stated point for radius r on the arm of each label (variants give the hints below)."""
    angle = turn * r + 2 * math.pi * rotation * labels.double() / num_classes
    first, second = r * torch.cos(angle), r * torch.sin(angle)
    return torch.stack([second, first] if swap else [first, second], dim=1)


#: Likely mistakes, recognised by the geometry they produce: (description, arm_points keywords).
GEOMETRY_MISTAKES = [
    ("every class lies on the same arm: the angle needs the term 2 pi c / num_classes", {"rotation": 0.0}),
    ("arm c is rotated the other way: the angle is 2 pi (t + c / num_classes), plus, not minus",
     {"rotation": -1.0}),
    ("arm c is rotated by pi c / num_classes instead of 2 pi c / num_classes", {"rotation": 0.5}),
    ("the arms make half a turn: the angle is 2 pi t, not pi t", {"turn": math.pi}),
    ("cos and sin are swapped: the point is t (cos a, sin a), x first", {"swap": True}),
]


def off_arm(X, y, num_classes, **variant):
    """The largest distance of a noise-free point from the point of its arm at its radius |x|."""
    Xd = X.double()
    r = Xd.norm(dim=1)
    return (Xd - arm_points(r, y, num_classes, **variant)).norm(dim=1)


def ks_uniform(values):
    """The Kolmogorov-Smirnov distance between the sample's distribution and U(0, 1)."""
    v = values.double().sort().values
    n = len(v)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    return max((i / n - v).max().item(), (v - (i - 1) / n).max().item())


def arm_curve(c, num_classes, samples=4001):
    t = torch.linspace(0, 1, samples, dtype=torch.float64)
    angle = 2 * math.pi * (t + c / num_classes)
    return torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1)


def distance_to_own_arm(X, y, num_classes):
    """Each point's distance to its own (noise-free) arm, sampled at 4001 points."""
    d = torch.empty(len(X), dtype=torch.float64)
    for c in range(num_classes):
        mask = y == c
        curve = arm_curve(c, num_classes)
        d[mask] = torch.cat([torch.cdist(part, curve).min(dim=1).values for part in X[mask].double().split(500)])
    return d


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_spirals_have_the_stated_shapes_dtypes_and_grouped_labels(student):
    """X is float32 (n * K, 2), y is int64 and grouped by class: n_per_class zeros, then ones, ... (one class too)"""
    for n_per_class, num_classes, noise, seed in ((1, 1, 0.0, 0), (1, 3, 0.1, 1), (5, 2, 0.05, 2), (40, 4, 0.0, 3),
                                                  (7, 5, 0.2, 4), (300, 2, 0.03, 5)):
        X, y = check_output(student.run(spirals, n_per_class, num_classes, noise, seed), n_per_class, num_classes)
        expect_close(y, expected_labels(n_per_class, num_classes),
                     name=f"y of make_spirals({n_per_class}, {num_classes}, {noise}, generator)",
                     hint="Rows are grouped by class and not shuffled: y = [0] * n_per_class + [1] * n_per_class "
                          "+ ... (torch.arange(num_classes).repeat_interleave(n_per_class)).")
        assert torch.isfinite(X).all(), f"X of make_spirals({n_per_class}, {num_classes}, ...) holds inf or nan."


@points(2)
def test_without_noise_every_point_lies_on_its_arm(student):
    """with noise = 0 each point of class c is t (cos a, sin a) with t = |x| <= 1 and a = 2 pi (t + c / K)"""
    for n_per_class, num_classes, seed in ((200, 2, 10), (150, 3, 11), (100, 4, 12), (60, 1, 13), (1, 5, 14),
                                           (50, 7, 15)):
        X, y = check_output(student.run(spirals, n_per_class, num_classes, 0.0, seed), n_per_class, num_classes)
        call = f"make_spirals({n_per_class}, {num_classes}, 0.0, generator)"
        radius = X.double().norm(dim=1)
        assert radius.max() <= 1 + 1e-6, (
            f"{call}: a point lies at distance {radius.max():.4g} from the origin; without noise every point lies "
            "at radius t, drawn uniformly in [0, 1).")
        error = off_arm(X, y, num_classes)
        if error.max() > ARM_ATOL:
            worst = int(error.argmax())
            mistakes = [what for what, variant in GEOMETRY_MISTAKES
                        if num_classes > 1 or "rotation" not in variant
                        if off_arm(X, y, num_classes, **variant).max() <= ARM_ATOL]
            raise AssertionError(
                f"{call}: point {worst} (class {int(y[worst])}) is {error[worst]:.3g} away from where its arm passes "
                f"at its radius {radius[worst]:.4f}; expected {arm_points(radius[worst:worst + 1], y[worst:worst + 1], num_classes)[0].tolist()}, "
                f"got {X[worst].tolist()}. "
                + (f"It looks as if {mistakes[0]}." if mistakes else f"The stated geometry: {GEOMETRY}"))


@points(1)
def test_radius_is_uniform_on_0_1(student):
    """without noise the radii |x| of each class are uniform on [0, 1) (Kolmogorov-Smirnov distance below 0.06)"""
    n_per_class, num_classes = 2000, 2
    X, y = check_output(student.run(spirals, n_per_class, num_classes, 0.0, 20), n_per_class, num_classes)
    for c in range(num_classes):
        radius = X[y == c].double().norm(dim=1)
        distance = ks_uniform(radius)
        quartiles = torch.quantile(radius, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
        assert distance < KS_BOUND, (
            f"make_spirals({n_per_class}, {num_classes}, 0.0, generator): the radii of class {c} are not uniform "
            f"on [0, 1): their distribution is {distance:.3f} away from U(0, 1) (Kolmogorov-Smirnov; allowed "
            f"{KS_BOUND}); their quartiles are {', '.join(f'{q:.3f}' for q in quartiles)}, expected about 0.25, "
            "0.5, 0.75. Draw t with torch.rand(..., generator=generator) and use it as the radius as it is (no "
            "square root, no scaling).")


@points(1)
def test_noise_has_the_stated_standard_deviation(student):
    """the points scatter around their arm with the stated standard deviation per coordinate (noise 0.02 and 0.05)"""
    for n_per_class, num_classes, noise, seed in ((1000, 2, 0.02, 30), (800, 3, 0.05, 31)):
        X, y = check_output(student.run(spirals, n_per_class, num_classes, noise, seed), n_per_class, num_classes)
        measured = distance_to_own_arm(X, y, num_classes).pow(2).mean().sqrt().item()
        low, high = NOISE_RATIO
        assert low * noise <= measured <= high * noise, (
            f"make_spirals({n_per_class}, {num_classes}, {noise}, generator): the points lie at a root-mean-square "
            f"distance of {measured:.4f} from their arm; Gaussian noise of standard deviation {noise} on each "
            f"coordinate puts them at about {noise} (allowed: {low * noise:.4f} to {high * noise:.4f}). Add "
            "noise * torch.randn(N, 2, generator=generator) to the points: a standard normal draw for each of the "
            "two coordinates, scaled by noise (not noise / sqrt(2), not a uniform draw, not only one coordinate).")


@points(1)
@requires("test_without_noise_every_point_lies_on_its_arm")
def test_the_same_generator_state_gives_the_same_data(student):
    """two generators seeded alike give identical (X, y), whatever PyTorch's global random state"""
    for n_per_class, num_classes, noise, seed in ((50, 2, 0.1, 40), (30, 3, 0.05, 41)):
        first, second = student.run(spirals_with_the_global_seed_changed, n_per_class, num_classes, noise, seed)
        X1, y1 = check_output(first, n_per_class, num_classes)
        X2, y2 = check_output(second, n_per_class, num_classes)
        hint = ("Draw every random number from the generator you are given (torch.rand(..., generator=generator), "
                "torch.randn(..., generator=generator)); torch.rand without it uses the global random state.")
        expect_close(X2, X1, rtol=0, atol=0, hint=hint,
                     name=f"X of make_spirals({n_per_class}, {num_classes}, {noise}, g) for the same seed of g, after "
                          "torch.manual_seed changed the global random state")
        expect_close(y2, y1, name="y for the same seed of the generator", hint=hint)


@points(1)
@requires("test_without_noise_every_point_lies_on_its_arm")
def test_a_generator_that_moved_on_gives_new_data(student):
    """without noise, a second call with the same generator, or a generator seeded otherwise, gives new points"""
    n_per_class, num_classes = 100, 2
    runs = student.run(spirals_from_moving_generators, n_per_class, num_classes, 0.0, [50, 51])
    first, second, other = (check_output(run, n_per_class, num_classes)[0] for run in runs)
    for label, X in (("a second call with the same generator", second), ("a generator seeded otherwise", other)):
        same = (X == first).all(dim=1).double().mean().item()
        assert same < 0.5, (
            f"make_spirals({n_per_class}, {num_classes}, 0.0, generator): {label} gave {same:.0%} of the same "
            "points. Each point's position along its arm, t, is random: draw it with torch.rand(..., "
            "generator=generator) (not torch.linspace), so that new generator states give new data.")


@points(1)
@requires("test_without_noise_every_point_lies_on_its_arm")
def test_make_spirals_does_not_use_the_library_generators(student):
    """make_spirals uses nothing from dlvision.data (the library's make_spirals, make_moons), nor does its helpers"""
    try:
        expect_implemented_without(student, "make_spirals", ["dlvision.data"])
    except AssertionError as error:
        raise AssertionError(f"{error} Draw the radii and the noise yourself with torch.rand and torch.randn.") \
            from None
