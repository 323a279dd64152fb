"""Hidden tests for pca (Chapter 1, section 3.1).

The reference is torch.linalg.svd in float64 of the centred data: the top-k right singular vectors, and each
squared singular value over the sum of all of them. A component's sign is arbitrary, so each of the student's
rows is compared with the reference row of the same sign. The test data have well-separated singular values, so
that the components are well defined; float32 components are compared with the tolerance in THRESHOLDS.md.
"""
import ast

import torch

from dlvision.data import load_digits
from dlvision.grading import expect_close, expect_implemented_without, points

#: (N, D, k): more samples than features, fewer, one feature, every component, one component.
SHAPES = [(50, 10, 3), (20, 5, 5), (8, 20, 4), (100, 1, 1), (200, 30, 10), (12, 12, 1)]
DTYPES = (torch.float32, torch.float64)

#: Tolerances for unit-norm components (absolute) and ratios (relative), by dtype (THRESHOLDS.md).
COMPONENT_ATOL = {torch.float32: 1e-4, torch.float64: 1e-9}
RATIO_RTOL = {torch.float32: 1e-4, torch.float64: 1e-9}

FORBIDDEN_DOTTED = ["torch.pca_lowrank", "sklearn", "scipy"]

CENTRE_HINT = ("Centre the data first (X - X.mean(dim=0)), then take torch.linalg.svd(Xc, full_matrices=False): "
               "the components are the first k rows of Vh (already unit norm and sorted by singular value). "
               "Without centring, the first component points at the mean instead of along the spread.")
RATIO_HINT = ("The ratio of component i is S[i] ** 2 / (S ** 2).sum(), where the sum runs over ALL singular values "
              "of the centred data, not only the first k. Square the singular values.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def pca_of_each(cases):
    """The student's pca on each (X, k), as (components, ratio) pairs."""
    return [tuple(pca(X, k)) for X, k in cases]


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


def describe(X, k):
    return f"X {tuple(X.shape)}, k={k}, {str(X.dtype).removeprefix('torch.')}"


def results(student, cases):
    got = student.run(pca_of_each, cases)
    for (X, k), result in zip(cases, got):
        assert isinstance(result, tuple) and len(result) == 2, (
            f"pca should return a pair (components, explained_variance_ratio), got {type(result).__name__} "
            f"for {describe(X, k)}.")
        yield (X, k), result[0], result[1]


def check_components(components, X, k, name):
    expected, _ = reference(X, k)
    if isinstance(components, torch.Tensor) and components.shape == expected.shape and components.is_floating_point():
        signs = torch.where((components.double().cpu() * expected).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
        expected = expected * signs  # either sign of each component is right
    expect_close(components, expected.to(X.dtype), rtol=0, atol=COMPONENT_ATOL[X.dtype], name=name,
                 hint=CENTRE_HINT)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_pca_components_match_svd(student):
    """pca's components are the top-k right singular vectors of the centred data (either sign), float32 and float64"""
    for (X, k), components, _ in results(student, random_cases(1)):
        check_components(components, X, k, f"the components of pca for {describe(X, k)}")


@points(1)
def test_pca_explained_variance_ratio_matches_svd(student):
    """pca's explained variance ratios are each squared singular value over the sum of all of them"""
    for (X, k), _, ratio in results(student, random_cases(2)):
        _, expected = reference(X, k)
        expect_close(ratio, expected.to(X.dtype), rtol=RATIO_RTOL[X.dtype], atol=0,
                     name=f"the explained variance ratio of pca for {describe(X, k)}", hint=RATIO_HINT)


@points(1)
def test_pca_of_the_digits_matches_svd(student):
    """pca of the 1348 training digits (float32, 64 pixels) gives the reference eigen-digits and ratios for k=10"""
    X = load_digits()[0].reshape(-1, 64)
    [(components, ratio)] = student.run(pca_of_each, [(X, 10)])
    expect_implemented_without(student, "pca", FORBIDDEN_DOTTED)
    tree = ast.parse(student.source_of("pca"))
    assert "pca_lowrank" not in {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}, (
        "pca calls a ready-made PCA (pca_lowrank); compute it from torch.linalg.svd of the centred data.")
    check_components(components, X, 10, "the first 10 eigen-digits")
    _, expected = reference(X, 10)
    expect_close(ratio, expected.float(), rtol=RATIO_RTOL[torch.float32], atol=0,
                 name="the explained variance ratios of the first 10 eigen-digits", hint=RATIO_HINT)
