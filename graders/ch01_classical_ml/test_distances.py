"""Hidden tests for pairwise_sq_distances (Chapter 1, section 1.1).

The reference is torch.cdist in float64 without its matrix-product shortcut, squared, then cast to the dtype
under test. The trick |x|^2 - 2 x.y + |y|^2 rounds in proportion to the squared norms, not to the distance,
so the absolute tolerance scales with them (see THRESHOLDS.md); the speed bound is explained there too.
The off-limits and speed checks count only once the values are right (a hollow answer passes neither).
"""
import pytest
import torch

from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, points, requires,
                              speed_ratio)

#: (N, M, D): single points, one feature, odd sizes, a wide and a tall matrix, and digits-sized rows.
SHAPES = [(1, 1, 1), (1, 5, 3), (7, 1, 2), (5, 7, 1), (13, 17, 64), (64, 33, 10), (3, 200, 7), (100, 100, 5)]
DTYPES = (torch.float32, torch.float64)

#: Absolute tolerance per unit of squared norm (max |x|^2 + max |y|^2), by dtype (THRESHOLDS.md).
NORM_ATOL = {torch.float32: 1e-5, torch.float64: 1e-12}

#: Ready-made distances (full dotted paths), and the same as method names.
FORBIDDEN = ["torch.cdist", "torch.pdist", "torch.nn.functional", "torch.nn.PairwiseDistance"]
FORBIDDEN_ATTRIBUTES = {"cdist", "pdist", "pairwise_distance"}

TRICK_HINT = ("Expand |x - y|^2 = |x|^2 - 2 x.y + |y|^2: (X * X).sum(1, keepdim=True) is an (N, 1) column, "
              "(Y * Y).sum(1) an (M,) row, and X @ Y.T the (N, M) cross term; mind the minus sign on 2 X @ Y.T.")
CLAMP_HINT = ("The three terms of the trick nearly cancel for points close together and far from the origin, and "
              "rounding can leave a tiny negative number. Clamp the result at 0 (.clamp_min(0)).")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def distances_of_each(pairs):
    """The student's pairwise_sq_distances on each (X, Y)."""
    return [pairwise_sq_distances(X, Y) for X, Y in pairs]


# --- inputs of the speed test: run in the student's kernel (and here, for the reference) -------------------------

def tall_inputs(generator):
    """1000 points against 10, 4 features: a loop over the rows of X pays its overhead 1000 times."""
    import torch

    X = torch.randn(1000, 4, generator=generator)
    Y = torch.randn(10, 4, generator=generator)
    return (X, Y), {}


def wide_inputs(generator):
    """10 points against 1000, 4 features: a loop over the rows of Y pays its overhead 1000 times."""
    import torch

    X = torch.randn(10, 4, generator=generator)
    Y = torch.randn(1000, 4, generator=generator)
    return (X, Y), {}


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(X, Y):
    exact = torch.cdist(X.double(), Y.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    return exact.to(X.dtype)


def norm_scale(X, Y):
    return (X.double() ** 2).sum(1).max().item() + (Y.double() ** 2).sum(1).max().item()


def describe(X, Y):
    return f"X {tuple(X.shape)} and Y {tuple(Y.shape)}, {str(X.dtype).removeprefix('torch.')}"


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


def reference_trick(X, Y):
    """The no-loop reference the student's time is compared with (the same trick, one thread)."""
    cross = torch.mm(X, Y.t())
    return (X.square().sum(dim=-1).unsqueeze(1) + Y.square().sum(dim=-1).unsqueeze(0) - 2.0 * cross).clamp(min=0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The references here are small tensors: run them on one thread. With the process's default (one thread per
    core), small operations on a busy 2-core machine stall for milliseconds each (THRESHOLDS.md, "Timing")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_distances_match_cdist_on_many_shapes(student):
    """pairwise_sq_distances matches torch.cdist squared for 1 to 200 points and 1 to 64 features, float32 and float64"""
    pairs = random_pairs(1) + random_pairs(2, scale=3.0, offset=-2.0)
    for (X, Y), d in zip(pairs, student.run(distances_of_each, pairs)):
        expect_close(d, reference(X, Y), atol=NORM_ATOL[X.dtype] * norm_scale(X, Y),
                     name=f"pairwise_sq_distances for {describe(X, Y)}", hint=TRICK_HINT)


@points(1)
def test_distances_are_never_negative(student):
    """pairwise_sq_distances is never negative and is 0 between a point and itself, even where rounding cancels"""
    cases = near_duplicates(3)
    for (X, Y), d in zip(cases, student.run(distances_of_each, cases)):
        name = f"pairwise_sq_distances between 40 points near {X[0, 0].item():.0f}, within " \
               f"{(X - X.mean(0)).abs().max().item():.2g} of each other, {describe(X, Y)}"
        if isinstance(d, torch.Tensor) and d.shape == (len(X), len(Y)) and d.is_floating_point():
            assert not (d < 0).any(), (
                f"{name}: {int((d < 0).sum())} of the values are negative (the smallest is {d.min().item():.3g}); "
                f"a squared distance never is. {CLAMP_HINT}")
        expect_close(d, reference(X, Y), atol=NORM_ATOL[X.dtype] * norm_scale(X, Y), name=name, hint=CLAMP_HINT)
    # The docstring's "same dtype and device", on a GPU or the stand-in: it can only fail this test.
    X, Y = cases[0]
    expect_keeps_device(student, "pairwise_sq_distances", X[:7], Y[:5], hint=(
        "pairwise_sq_distances must work on any device and return D2 on the device of X and Y: clamp with "
        ".clamp_min(0) (or clamp(min=0)) rather than torch.maximum(D2, torch.zeros(N, M)), whose zeros live on the "
        "CPU unless made with device=X.device, and make any other tensor you need from X and Y."))


@points(1)
@requires("test_distances_match_cdist_on_many_shapes")
def test_distances_are_implemented_by_hand(student):
    """pairwise_sq_distances does not use torch.cdist or another ready-made distance, not even through a helper"""
    X = torch.randn(6, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    expect_implemented_without(student, "pairwise_sq_distances", FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES,
                               calling=((X, X[:4] + 1.0), {}))


#: The speed test (THRESHOLDS.md): a Python loop over the rows of either argument pays the per-operation overhead
#: 1000 times in one of the two shapes, while the vectorised computation is a handful of small operations (small
#: enough that broadcasting's (N, M, D) intermediate costs little more than the trick's matrix product).
SPEED_INPUTS, SPEED_BOUND, SPEED_ATTEMPTS = [(tall_inputs, "X (1000, 4) and Y (10, 4)"),
                                             (wide_inputs, "X (10, 4) and Y (1000, 4)")], 30, 3
SPEED_MIN_SECONDS = 0.1


def distances_speed_ratio(student, make_inputs):
    """The student's time over the reference's. A ratio just over the bound (below 3x the bound; a Python loop
    measures far more, see THRESHOLDS.md) is measured again, up to SPEED_ATTEMPTS times in all, keeping the best,
    so that a burst of load on the grading machine does not fail a vectorised answer."""
    best = float("inf")
    for _ in range(SPEED_ATTEMPTS):  # on one thread throughout (the fixture one_torch_thread), checks included
        best = min(best, speed_ratio(student, "pairwise_sq_distances", reference_trick, make_inputs, repeats=3,
                                     min_seconds=SPEED_MIN_SECONDS))
        if best < SPEED_BOUND or best >= 3 * SPEED_BOUND:
            break
    return best


@points(1)
@requires("test_distances_match_cdist_on_many_shapes")
def test_distances_are_vectorised(student):
    """pairwise_sq_distances for 1000 x 10 and 10 x 1000 points is within 30x the time of a vectorised reference"""
    for make_inputs, shapes in SPEED_INPUTS:
        ratio = distances_speed_ratio(student, make_inputs)
        assert ratio < SPEED_BOUND, (
            f"pairwise_sq_distances took {ratio:.1f} times as long as a vectorised version for {shapes}, float32 "
            f"(allowed: {SPEED_BOUND} times; a vectorised answer takes about 2 to 8 times). A Python loop over the "
            "points runs one small operation at a time, each with microseconds of overhead; compute the whole "
            "(N, M) matrix at once with X @ Y.T and broadcasting.")
