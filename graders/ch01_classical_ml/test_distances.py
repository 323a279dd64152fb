"""Hidden tests for pairwise_sq_distances (Chapter 1, section 1.1).

The reference is torch.cdist in float64 without its matrix-product shortcut, squared, then cast to the dtype
under test. The trick |x|^2 - 2 x.y + |y|^2 rounds in proportion to the squared norms, not to the distance,
so the absolute tolerance scales with them (see THRESHOLDS.md); the speed bound is explained there too.
"""
import ast

import torch

from dlvision.grading import StudentError, expect_close, expect_implemented_without, points, speed_ratio

#: (N, M, D): single points, one feature, odd sizes, a wide and a tall matrix, and digits-sized rows.
SHAPES = [(1, 1, 1), (1, 5, 3), (7, 1, 2), (5, 7, 1), (13, 17, 64), (64, 33, 10), (3, 200, 7), (100, 100, 5)]
DTYPES = (torch.float32, torch.float64)

#: Absolute tolerance per unit of squared norm (max |x|^2 + max |y|^2), by dtype (THRESHOLDS.md).
NORM_ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}

FORBIDDEN_DOTTED = ["torch.cdist", "torch.nn", "F.", "scipy", "sklearn"]
FORBIDDEN_ATTRIBUTES = {"cdist", "pairwise_distance", "cdist_"}

TRICK_HINT = ("Expand |x - y|^2 = |x|^2 - 2 x.y + |y|^2: (X * X).sum(1, keepdim=True) is an (N, 1) column, "
              "(Y * Y).sum(1) an (M,) row, and X @ Y.T the (N, M) cross term; mind the minus sign on 2 X @ Y.T.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def distances_of_each(pairs):
    """The student's pairwise_sq_distances on each (X, Y)."""
    return [pairwise_sq_distances(X, Y) for X, Y in pairs]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(X, Y):
    exact = torch.cdist(X.double(), Y.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    return exact.to(X.dtype)


def norm_scale(X, Y):
    return (X.double() ** 2).sum(1).max().item() + (Y.double() ** 2).sum(1).max().item()


def describe(X, Y):
    return f"X {tuple(X.shape)} and Y {tuple(Y.shape)}, {str(X.dtype).removeprefix('torch.')}"


def check_cases(student, pairs, hint):
    got = student.run(distances_of_each, pairs)
    for (X, Y), d in zip(pairs, got):
        expect_close(d, reference(X, Y), atol=NORM_ATOL[X.dtype] * norm_scale(X, Y),
                     name=f"pairwise_sq_distances for {describe(X, Y)}", hint=hint)


def random_pairs(seed, scale=1.0, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    pairs = []
    for dtype in DTYPES:
        for n, m, d in SHAPES:
            X = torch.randn(n, d, generator=g, dtype=torch.float64) * scale + offset
            Y = torch.randn(m, d, generator=g, dtype=torch.float64) * scale + offset
            pairs.append((X.to(dtype), Y.to(dtype)))
    return pairs


def near_duplicates(seed):
    """Points far from the origin and close together, each set compared with itself: the three terms of the
    trick nearly cancel and rounding leaves values slightly below 0 unless they are clamped."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for dtype, offset, spread in [(torch.float32, 100.0, 0.01), (torch.float64, 1e6, 1e-4)]:
        P = (offset + spread * torch.randn(40, 6, generator=g, dtype=torch.float64)).to(dtype)
        cases.append((P, P.clone()))
    return cases


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_distances_match_cdist_on_many_shapes(student):
    """pairwise_sq_distances matches torch.cdist squared for 1 to 200 points and 1 to 64 features, float32 and float64"""
    check_cases(student, random_pairs(1), TRICK_HINT)
    check_cases(student, random_pairs(2, scale=3.0, offset=-2.0), TRICK_HINT)


@points(1)
def test_distances_are_never_negative(student):
    """pairwise_sq_distances is never negative and is 0 between a point and itself, even where rounding cancels"""
    for (X, Y), d in zip(near_duplicates(3), student.run(distances_of_each, near_duplicates(3))):
        assert isinstance(d, torch.Tensor) and d.shape == (len(X), len(Y)), (
            f"expected a tensor of shape {(len(X), len(Y))} for {describe(X, Y)}, got "
            f"{tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__}.")
        assert not (d < 0).any(), (
            f"pairwise_sq_distances returned {int((d < 0).sum())} negative values (the smallest is "
            f"{d.min().item():.3g}) for {describe(X, Y)}: points near {X[0, 0].item():.0f} and within "
            f"{(X - X.mean(0)).abs().max().item():.2g} of each other. The three terms of the trick nearly cancel "
            "and rounding can leave a tiny negative number. Clamp the result at 0 (.clamp_min(0)).")
        expect_close(d, reference(X, Y), atol=NORM_ATOL[X.dtype] * norm_scale(X, Y),
                     name=f"pairwise_sq_distances between near-duplicate points, {describe(X, Y)}", hint=TRICK_HINT)


@points(1)
def test_distances_are_implemented_by_hand(student):
    """pairwise_sq_distances does not call torch.cdist or another ready-made distance"""
    try:  # a function that does not run yet earns nothing here either
        student.run(distances_of_each, [(torch.randn(2, 3), torch.randn(4, 3))])
    except StudentError as error:
        raise AssertionError(f"pairwise_sq_distances does not run yet ({error}); this check counts once it does.") \
            from None
    expect_implemented_without(student, "pairwise_sq_distances", FORBIDDEN_DOTTED)
    tree = ast.parse(student.source_of("pairwise_sq_distances"))
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & FORBIDDEN_ATTRIBUTES)
    assert not used, (f"pairwise_sq_distances calls .{used[0]}(...), a ready-made version of what this exercise "
                      "asks you to write with a matrix product, sums and broadcasting.")


#: The speed test (THRESHOLDS.md): 1000 points against 20, and 20 against 1000, 8 features each. A Python loop
#: over the rows of either argument pays the per-operation overhead 1000 times in one of the two shapes, while
#: the whole vectorised computation is a handful of operations on 20,000 numbers.
SPEED_SHAPES, SPEED_BOUND, SPEED_ATTEMPTS = [(1000, 20, 8), (20, 1000, 8)], 30, 3


def reference_trick(X, Y):
    """The no-loop reference the student's time is compared with."""
    return ((X * X).sum(1, keepdim=True) - 2 * (X @ Y.T) + (Y * Y).sum(1)).clamp_min(0)


def distances_speed_ratio(student, X, Y):
    """The student's time over the reference's. A ratio just over the bound (below 3x the bound; a Python loop
    measures 140x to 340x) is measured again, up to SPEED_ATTEMPTS times in all, keeping the best, so that a
    burst of load on the grading machine does not fail a vectorised answer."""
    best = float("inf")
    for _ in range(SPEED_ATTEMPTS):
        best = min(best, speed_ratio(student, "pairwise_sq_distances", reference_trick, X, Y, repeats=3))
        if best < SPEED_BOUND or best >= 3 * SPEED_BOUND:
            break
    return best


@points(1)
def test_distances_are_vectorised(student):
    """pairwise_sq_distances for 1000 x 20 and 20 x 1000 points is within 30x the time of a vectorised reference"""
    g = torch.Generator().manual_seed(4)
    for n, m, d in SPEED_SHAPES:
        X, Y = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g)
        ratio = distances_speed_ratio(student, X, Y)
        assert ratio < SPEED_BOUND, (
            f"pairwise_sq_distances took {ratio:.1f} times as long as a vectorised version for X {(n, d)} and "
            f"Y {(m, d)} (allowed: {SPEED_BOUND} times; a vectorised answer takes about 1 to 4 times). A Python loop "
            "over the points runs one small operation at a time, each with microseconds of overhead; compute the "
            "whole (N, M) matrix at once with X @ Y.T and broadcasting.")
