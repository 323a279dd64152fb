"""Hidden tests for knn_predict (Chapter 1, section 1.2).

The reference computes exact distances in float64 (torch.cdist without its matrix-product shortcut), takes the
k nearest, counts votes and breaks ties towards the smallest label. Test points whose k-th and (k+1)-th nearest
neighbours are too close to call in float32 are left out of the comparison. The digits' test labels stay on
this side: the student's kernel receives the test images only. The accuracy bound is in THRESHOLDS.md.
"""
import torch

from dlvision.data import load_digits
from dlvision.grading import expect_close, points

#: (training points M, test points N, features D, classes C, k, dtype).
CASES = [(30, 10, 2, 3, 1, torch.float64), (50, 20, 5, 4, 3, torch.float64), (50, 20, 5, 4, 4, torch.float32),
         (1, 3, 2, 1, 1, torch.float64), (40, 1, 3, 5, 7, torch.float32), (64, 25, 64, 10, 5, torch.float32),
         (9, 6, 1, 2, 2, torch.float64), (20, 8, 3, 3, 20, torch.float64)]

#: Minimum accuracy of knn_predict(k=3) on the digits' test set (THRESHOLDS.md: measured 0.982).
DIGITS_K, DIGITS_THRESHOLD = 3, 0.97

VOTE_HINT = ("Take the k SMALLEST distances of each row (topk(k, largest=False) or argsort), look up their "
             "labels in y_train, count the votes per class and return the label with the most votes.")
TIE_HINT = ("When labels tie in votes, return the smallest of the tied labels: count votes into a (N, C) tensor "
            "and take argmax(dim=1), which returns the first maximum. The label of the single nearest neighbour "
            "does not break the tie.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def predict_each(cases):
    """The student's knn_predict on each (X_train, y_train, X_test, k)."""
    return [knn_predict(X_train, y_train, X_test, k) for X_train, y_train, X_test, k in cases]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(X_train, y_train, X_test, k):
    """(predictions, decidable): the reference labels and which test points are safe to compare in float32."""
    d = torch.cdist(X_test.double(), X_train.double(), compute_mode="donot_use_mm_for_euclid_dist") ** 2
    ordered, order = d.sort(dim=1, stable=True)
    votes = torch.zeros(len(X_test), int(y_train.max()) + 1, dtype=torch.int64)
    votes.scatter_add_(1, y_train[order[:, :k]], torch.ones(len(X_test), k, dtype=torch.int64))
    if k < d.shape[1]:
        gap = ordered[:, k] - ordered[:, k - 1]
        decidable = gap > 1e-4 * (1 + ordered[:, k])
    else:
        decidable = torch.ones(len(X_test), dtype=torch.bool)
    return votes.argmax(dim=1), decidable


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


def describe(X_train, X_test, k):
    return (f"{len(X_train)} training and {len(X_test)} test points with {X_train.shape[1]} features, k={k}, "
            f"{str(X_train.dtype).removeprefix('torch.')}")


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_knn_matches_a_reference_on_random_data(student):
    """knn_predict agrees with a reference majority vote for k from 1 to M, 1 to 64 features, float32 and float64"""
    cases = random_cases(1) + random_cases(2)
    for (X_train, y_train, X_test, k), got in zip(cases, student.run(predict_each, cases)):
        expected, decidable = reference(X_train, y_train, X_test, k)
        name = f"knn_predict, {describe(X_train, X_test, k)}"
        assert isinstance(got, torch.Tensor) and got.shape == expected.shape, (
            f"{name}: expected a tensor of shape {tuple(expected.shape)} (one label per test point), got "
            f"{tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__}.")
        expect_close(got[decidable], expected[decidable], name=name, hint=VOTE_HINT)  # dtype int64 included


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
def test_knn_is_accurate_on_the_digits(student):
    """3-NN on the flattened digits classifies at least 97% of the held-out test images correctly"""
    X_train, y_train, X_test, y_test = load_digits()
    cases = [(X_train.reshape(len(X_train), -1), y_train, X_test.reshape(len(X_test), -1), DIGITS_K)]
    [predicted] = student.run(predict_each, cases)
    assert isinstance(predicted, torch.Tensor) and predicted.shape == y_test.shape, (
        f"expected {len(y_test)} predictions, got "
        f"{tuple(predicted.shape) if isinstance(predicted, torch.Tensor) else type(predicted).__name__}.")
    accuracy = (predicted.cpu() == y_test).double().mean().item()
    assert accuracy >= DIGITS_THRESHOLD, (
        f"{DIGITS_K}-NN classified {accuracy:.1%} of the {len(y_test)} test digits correctly; at least "
        f"{DIGITS_THRESHOLD:.0%} was expected (a correct kNN gets about 98%). {VOTE_HINT}")
