"""Hidden tests for knn_predict (Chapter 1, section 1.2).

The reference computes exact distances in float64 (torch.cdist without its matrix-product shortcut), takes the
k nearest, counts votes and breaks ties towards the smallest label. Test points whose k-th and (k+1)-th nearest
neighbours are too close to call in float32 are left out of the comparison.

The digits test uses data the student's code cannot reproduce or look up: a fresh random split of the bundled
digits, with fresh noise, in coordinates turned by a fresh random rotation (distances, and so kNN, do not
change under a rotation, but a lookup of the bundled digits finds nothing). The predictions are compared with
the reference's, not with the labels, which stay on this side (THRESHOLDS.md has the measurements).
"""
import pytest
import torch

from dlvision.data import load_digits
from dlvision.grading import expect_close, expect_keeps_device, fresh_generator, points

#: (training points M, test points N, features D, classes C, k, dtype).
CASES = [(30, 10, 2, 3, 1, torch.float64), (50, 20, 5, 4, 3, torch.float64), (50, 20, 5, 4, 4, torch.float32),
         (1, 3, 2, 1, 1, torch.float64), (40, 1, 3, 5, 7, torch.float32), (64, 25, 64, 10, 5, torch.float32),
         (9, 6, 1, 2, 2, torch.float64), (20, 8, 3, 3, 20, torch.float64)]

#: The digits test: k, training and test points drawn from the 1797 digits, and the noise added to every pixel.
DIGITS_K, DIGITS_TRAIN, DIGITS_TEST, DIGITS_NOISE = 3, 1300, 497, 0.05

#: Relative gap between the k-th and (k+1)-th nearest distances below which a test point is not compared.
UNDECIDABLE_GAP = 1e-4

VOTE_HINT = ("Take the k SMALLEST distances of each row (topk(k, largest=False) or argsort), look up their "
             "labels in y_train, count the votes per class and return the label with the most votes.")
TIE_HINT = ("When labels tie in votes, return the smallest of the tied labels: count votes into a (N, C) tensor "
            "and take argmax(dim=1), which returns the first maximum. The label of the single nearest neighbour "
            "does not break the tie.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def predict_each(cases):
    """The student's knn_predict on each (X_train, y_train, X_test, k)."""
    return [knn_predict(X_train, y_train, X_test, k) for X_train, y_train, X_test, k in cases]


def knn_on_device(X_train, y_train, X_test, k, classes, device="cpu"):
    """knn_predict for expect_keeps_device. y_train answers .max() with the known largest label (the stand-in device
    holds no values to compute it from); anything else it forwards to the labels tensor."""
    class Top(int):
        def item(self):
            return int(self)

    class Labels:
        def __init__(self, labels):
            self.labels = labels

        def max(self, *args, **kwargs):
            return self.labels.max(*args, **kwargs) if args or kwargs else Top(classes - 1)

        def __getattr__(self, name):
            return getattr(self.labels, name)

        def __getitem__(self, index):
            return self.labels[index]

        def __len__(self):
            return len(self.labels)

    return knn_predict(X_train, Labels(y_train), X_test, k)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(X_train, y_train, X_test, k):
    """(predictions, decidable): the reference labels and which test points are safe to compare in float32."""
    d = torch.cdist(X_test.double(), X_train.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    ordered, order = d.sort(dim=1, stable=True)
    ballots = torch.zeros(len(X_test), int(y_train.max()) + 1, dtype=torch.int64)
    ballots.scatter_add_(1, y_train[order[:, :k]], torch.ones(len(X_test), k, dtype=torch.int64))
    if k < d.shape[1]:
        gap = ordered[:, k] - ordered[:, k - 1]
        decidable = gap > UNDECIDABLE_GAP * (1 + ordered[:, k])
    else:
        decidable = torch.ones(len(X_test), dtype=torch.bool)
    return ballots.argmax(dim=1), decidable


def random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for m, n, d, c, k, dtype in CASES:
        X_train = torch.randn(m, d, generator=g, dtype=torch.float64).to(dtype)
        y_train = torch.randint(c, (m,), generator=g)
        y_train[torch.randint(m, (1,), generator=g)] = c - 1  # every case has C = c classes
        X_test = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
        cases.append((X_train, y_train, X_test, k))
    return cases


def fresh_digits(generator, noise):
    """All 1797 digits as rows of 64 pixels, in a fresh random order, with fresh noise, turned by a fresh random
    rotation of the 64-dimensional space; returns (X float64, labels)."""
    X_train, y_train, X_test, y_test = load_digits()
    X = torch.cat([X_train, X_test]).reshape(-1, 64).double()
    y = torch.cat([y_train, y_test])
    order = torch.randperm(len(y), generator=generator)
    X = X[order] + noise * torch.randn(X.shape, generator=generator, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(64, 64, generator=generator, dtype=torch.float64))
    return X @ rotation, y[order]


def describe(X_train, X_test, k):
    return (f"{len(X_train)} training and {len(X_test)} test points with {X_train.shape[1]} features, k={k}, "
            f"{str(X_train.dtype).removeprefix('torch.')}")


def check_shape(got, expected, name):
    assert isinstance(got, torch.Tensor) and got.shape == expected.shape, (
        f"{name}: expected a tensor of shape {tuple(expected.shape)} (one label per test point), got "
        f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}.")


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
def test_knn_matches_a_reference_on_random_data(student):
    """knn_predict agrees with a reference majority vote for k from 1 to M, 1 to 64 features, float32 and float64"""
    cases = random_cases(1) + random_cases(2)
    for (X_train, y_train, X_test, k), got in zip(cases, student.run(predict_each, cases)):
        expected, decidable = reference(X_train, y_train, X_test, k)
        name = f"knn_predict, {describe(X_train, X_test, k)}"
        check_shape(got, expected, name)
        expect_close(got[decidable], expected[decidable], name=name, hint=VOTE_HINT)  # dtype int64 included
    # The docstring's "on the device of X_test", on a GPU or the stand-in: it can only fail this test.
    X_train, y_train, X_test, k = cases[1]
    expect_keeps_device(student, knn_on_device, X_train, y_train, X_test, k, int(y_train.max()) + 1, hint=(
        "knn_predict must work on any device and return its labels on the device of X_test: make the vote table "
        "with torch.zeros(N, C, dtype=torch.int64, device=X_test.device). Without device= it lives on the CPU, "
        "and counting the GPU labels into it fails."))


@points(1)
def test_knn_breaks_ties_towards_the_smallest_label(student):
    """a tie in the vote goes to the smallest tied label, not to the nearest neighbour's label"""
    X_train = torch.tensor([[0.0], [1.0], [2.0], [3.0], [10.0], [11.0], [12.0]], dtype=torch.float64)
    y_train = torch.tensor([5, 2, 5, 2, 6, 1, 3])
    X_test = torch.tensor([[1.4], [1.6], [11.2]], dtype=torch.float64)
    cases = [(X_train, y_train, X_test, 2), (X_train, y_train, X_test, 4), (X_train, y_train, X_test, 3)]
    expected = [torch.tensor([2, 2, 1]), torch.tensor([2, 2, 1]), torch.tensor([5, 2, 1])]
    for (_, _, _, k), got, want in zip(cases, student.run(predict_each, cases), expected):
        expect_close(got, want, name=f"knn_predict with k={k} on 1-D points built to tie (train at "
                                     f"{X_train.flatten().tolist()} with labels {y_train.tolist()}, test at "
                                     f"{X_test.flatten().tolist()})", hint=TIE_HINT)


@points(1)
def test_knn_matches_a_reference_on_fresh_digits(student):
    """3-NN on a fresh split of the digits (noisy, rotated, float32) predicts what a reference 3-NN predicts"""
    X, y = fresh_digits(fresh_generator(), DIGITS_NOISE)
    X = X.float()
    X_train, y_train = X[:DIGITS_TRAIN], y[:DIGITS_TRAIN]
    X_test, y_test = X[DIGITS_TRAIN:DIGITS_TRAIN + DIGITS_TEST], y[DIGITS_TRAIN:DIGITS_TRAIN + DIGITS_TEST]
    [got] = student.run(predict_each, [(X_train, y_train, X_test, DIGITS_K)])
    expected, decidable = reference(X_train, y_train, X_test, DIGITS_K)
    name = f"{DIGITS_K}-NN on {DIGITS_TEST} digits against {DIGITS_TRAIN} (float32)"
    check_shape(got, expected, name)
    if got.dtype == torch.int64:
        wrong = int((got.cpu()[decidable] != expected[decidable]).sum())
        accuracy = (got.cpu() == y_test).double().mean().item()
        assert wrong == 0, (
            f"{name}: {wrong} of {int(decidable.sum())} predictions differ from a reference kNN's (your labels "
            f"match the true digits for {accuracy:.1%} of the test images, the reference's for "
            f"{(expected == y_test).double().mean().item():.1%}). {VOTE_HINT} {TIE_HINT}")
    expect_close(got[decidable], expected[decidable], name=name, hint=VOTE_HINT)  # dtype int64 included
