"""Hidden tests for pca (Chapter 1, section 3.1).

The reference is torch.linalg.svd in float64 of the centred data: the top-k right singular vectors, and each
squared singular value over the sum of all of them. A component's sign is arbitrary, so each of the student's
rows is compared with the reference row of the same sign. The test data have well-separated singular values, so
that the components are well defined; float32 components are compared with the tolerance in THRESHOLDS.md. Each
value test also takes the eigen-digits of a fresh random sample of the bundled digits, with fresh noise.
"""
import pytest
import torch

from dlvision.data import load_digits
from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, fresh_generator, points,
                              requires)

#: (N, D, k): more samples than features, fewer, one feature, every component, one component.
SHAPES = [(50, 10, 3), (20, 5, 5), (8, 20, 4), (100, 1, 1), (200, 30, 10), (12, 12, 1)]
DTYPES = (torch.float32, torch.float64)

#: Tolerances for unit-norm components (absolute) and ratios (relative), by dtype (THRESHOLDS.md).
COMPONENT_ATOL = {torch.float32: 1e-4, torch.float64: 1e-9}
RATIO_RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}

#: The eigen-digits case: DIGITS_N of the 1797 digits, with DIGITS_NOISE added to every pixel, k = DIGITS_K, in
#: float64 (in float32 the singular values of some random samples lie too close together to pin down the
#: components; THRESHOLDS.md).
DIGITS_N, DIGITS_NOISE, DIGITS_K = 1000, 0.05, 10

#: A ready-made PCA and low-rank SVD (full dotted paths), and the same as method names.
FORBIDDEN = ["torch.pca_lowrank", "torch.svd_lowrank"]
FORBIDDEN_ATTRIBUTES = {"pca_lowrank", "svd_lowrank"}

CENTRE_HINT = ("Centre the data first (X - X.mean(dim=0)), then take torch.linalg.svd(Xc, full_matrices=False): "
               "the components are the first k rows of Vh (already unit norm and sorted by singular value). "
               "Without centring, the first component points at the mean instead of along the spread.")
RATIO_HINT = ("The ratio of component i is S[i] ** 2 / (S ** 2).sum(), where the sum runs over ALL singular values "
              "of the centred data, not only the first k. Square the singular values.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def pca_of_each(cases):
    """The student's pca on each (X, k), as (components, ratio) pairs."""
    return [pca(X, k) for X, k in cases]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(X, k):
    X = X.double()
    _, S, Vh = torch.linalg.svd(X - X.mean(dim=0), full_matrices=False)
    return Vh[:k], (S ** 2)[:k] / (S ** 2).sum()


def random_cases(seed):
    """Data with distinct spreads along random orthogonal directions, far from the origin."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for dtype in DTYPES:
        for n, d, k in SHAPES:
            spreads = 3.0 * 0.6 ** torch.arange(d, dtype=torch.float64)
            Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
            mean = 5.0 + torch.randn(d, generator=g, dtype=torch.float64)
            X = (torch.randn(n, d, generator=g, dtype=torch.float64) * spreads) @ Q.T + mean
            cases.append((X.to(dtype), k))
    return cases


def fresh_digits(generator):
    """DIGITS_N of the digits as rows of 64 pixels, drawn at random, with fresh noise, float64."""
    X_train, _, X_test, _ = load_digits()
    X = torch.cat([X_train, X_test]).reshape(-1, 64).double()
    chosen = torch.randperm(len(X), generator=generator)[:DIGITS_N]
    return X[chosen] + DIGITS_NOISE * torch.randn(DIGITS_N, 64, generator=generator, dtype=torch.float64)


def kind_of(value):
    """What came back, in words: 'a tensor of shape (3, 4)', 'a tuple of 3 items', 'float'."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__


def describe(X, k):
    what = f"{DIGITS_N} noisy digits of 64 pixels" if X.shape == (DIGITS_N, 64) else f"X {tuple(X.shape)}"
    return f"{what}, k={k}, {str(X.dtype).removeprefix('torch.')}"


def results(student, cases):
    got = student.run(pca_of_each, cases)
    for (X, k), result in zip(cases, got):
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"pca should return a pair (components, ratio), got {kind_of(result)} for {describe(X, k)}.")
        yield (X, k), result[0], result[1]


def check_components(components, X, k, name):
    expected, _ = reference(X, k)
    if isinstance(components, torch.Tensor) and components.shape == expected.shape and components.is_floating_point():
        signs = torch.where((components.double().cpu() * expected).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
        expected = expected * signs  # either sign of each component is right
    expect_close(components, expected.to(X.dtype), rtol=0, atol=COMPONENT_ATOL[X.dtype], name=name,
                 hint=CENTRE_HINT)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The references here are small tensors: run them on one thread. With the process's default (one thread per
    core), small operations on a busy 2-core machine stall for milliseconds each (THRESHOLDS.md, "Timing")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_pca_components_match_svd(student):
    """pca's components are the top-k right singular vectors of the centred data (either sign), eigen-digits included"""
    cases = random_cases(1) + [(fresh_digits(fresh_generator()), DIGITS_K)]
    for (X, k), components, _ in results(student, cases):
        check_components(components, X, k, f"the components of pca for {describe(X, k)}")
    # The docstring's "same dtype and device as X", on a GPU or the stand-in: it can only fail this test.
    X, k = random_cases(5)[0]
    expect_keeps_device(student, "pca", X.float(), k, hint=(
        "pca must work on any device and return the components and the ratios on the device of X: call "
        "torch.linalg.svd on the centred tensor where it is (it runs on a GPU too) rather than on a .cpu() or NumPy "
        "copy, or move the results back with .to(X.device)."))


@points(1)
def test_pca_explained_variance_ratio_matches_svd(student):
    """pca's explained variance ratios are each squared singular value over the sum of all of them"""
    cases = random_cases(2) + [(fresh_digits(fresh_generator()), DIGITS_K)]
    for (X, k), _, ratio in results(student, cases):
        _, expected = reference(X, k)
        expect_close(ratio, expected.to(X.dtype), rtol=RATIO_RTOL[X.dtype], atol=0,
                     name=f"the explained variance ratio of pca for {describe(X, k)}", hint=RATIO_HINT)


@points(1)
@requires("test_pca_components_match_svd", "test_pca_explained_variance_ratio_matches_svd")
def test_pca_is_implemented_by_hand(student):
    """pca computes the components from an SVD itself: no torch.pca_lowrank, not even through a helper"""
    X, k = random_cases(3)[0]
    expect_implemented_without(student, "pca", FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES, calling=((X, k), {}))
