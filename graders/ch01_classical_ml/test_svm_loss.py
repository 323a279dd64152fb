"""Hidden tests for svm_loss (Chapter 1, section 2.2).

The reference is autograd in float64 through the multiclass hinge loss written with torch built-ins:
(1/N) sum_i sum_{j != y_i} relu(s_ij - s_iy_i + 1) + reg * (W ** 2).sum(), from the same W, X, y and reg that the
student's function receives. Random inputs keep every margin away from the kink at 0, except in the cases with
integer weights and inputs, built so that some margins are exactly 0: there autograd's relu has derivative 0, as
the contract says ("a margin of exactly 0 counts as not positive").

The training test runs the grader's own minibatch SGD twice with the same seed: in the student's kernel on the
student's svm_loss, and here on the reference. A correct loss gives the same W up to rounding, so the two
classifiers must predict the same digit for every test image (those the reference scores as a near tie are left
out). The digits are a fresh random split of the bundled set, with fresh noise, in coordinates turned by a fresh
random rotation, so the student's code can neither reproduce nor look up the test images; their labels stay here.
"""
import pytest
import torch

from dlvision.data import load_digits
from dlvision.grading import (expect_close, expect_implemented_without, expect_keeps_device, fresh_generator,
                              fresh_seed, points, requires)

#: (N, D, C, reg): one sample, one feature, two classes, digits-sized problems, with and without regularisation.
CASES = [(1, 1, 2, 0.0), (5, 3, 4, 0.1), (20, 65, 10, 1e-3), (7, 10, 3, 1.3), (64, 65, 10, 0.0), (3, 2, 2, 0.5)]

#: (N, D, C, reg) of the cases with integer weights and inputs, where some margins are exactly 0.
INTEGER_CASES = [(6, 3, 4, 0.0), (12, 5, 3, 0.1)]

#: The grader's training run (the seed is fresh in every run), and its data: DIGITS_TRAIN of the 1797 digits to
#: train on, the others to compare predictions on, with DIGITS_NOISE added to every pixel.
TRAINING = {"lr": 0.1, "reg": 1e-4, "epochs": 20, "batch_size": 64}
DIGITS_TRAIN, DIGITS_NOISE = 1300, 0.05

#: Test images whose two best reference scores are closer than this are not compared (THRESHOLDS.md).
NEAR_TIE = 1e-6

#: Autograd and ready-made margin losses (full dotted paths), and the same as method names.
FORBIDDEN = ["torch.autograd", "torch.func", "torch.nn"]
FORBIDDEN_ATTRIBUTES = {"backward", "grad", "multi_margin_loss", "multilabel_margin_loss", "hinge_embedding_loss"}

LOSS_HINT = ("loss = (1/N) sum_i sum_{j != y_i} max(0, s_ij - s_iy_i + 1) + reg * (W ** 2).sum() (no 1/2). Leave "
             "the true class out of the sum: its own margin is always max(0, 1) = 1, so a loss that is 1 too large "
             "per sample counts it.")
GRAD_HINT = ("With m_ij = s_ij - s_iy_i + 1: dL/ds_ij = 1 for every wrong class j with m_ij > 0 (a margin of "
             "exactly 0 does not count), and dL/ds_iy_i = minus the number of such classes; then "
             "dW = X.T @ dS / N + 2 * reg * W.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def loss_of_each(name, cases):
    """The student's loss function `name` on each (W, X, y, reg)."""
    return [globals()[name](W, X, y, reg) for W, X, y, reg in cases]


# A scenario's source travels as a string, and the grading kernel refuses strings over 1000 characters.
def train_with_loss(name, X, y, lr, reg, epochs, batch_size, seed):
    """The grader's SGD on the loss `name` (the student's in the kernel, the reference here); returns W."""
    import torch

    loss_fn = globals()[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(seed)
        N, D = X.shape
        W = 0.001 * torch.randn(D, int(y.max()) + 1, generator=g, dtype=X.dtype)
        steps, step = epochs * -(-N // batch_size), 0
        for _ in range(epochs):
            shuffled = torch.randperm(N, generator=g)
            for first in range(0, N, batch_size):
                rows = shuffled[first:first + batch_size]
                W = W - lr * (1 - step / steps) * loss_fn(W, X[rows], y[rows], reg)[1]
                step += 1
    finally:
        torch.set_num_threads(threads)
    return W


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(W, X, y, reg):
    W = W.clone().requires_grad_(True)
    scores = X @ W
    margins = scores - scores.gather(1, y[:, None]) + 1
    others = torch.ones_like(margins).scatter_(1, y[:, None], 0.0)  # leave out j = y_i
    loss = (torch.relu(margins) * others).sum() / len(X) + reg * W.pow(2).sum()
    loss.backward()
    return loss.detach(), W.grad


def random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, d, c, reg in CASES:
        W = torch.randn(d, c, generator=g, dtype=torch.float64)
        X = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = torch.randint(c, (n,), generator=g)
        cases.append((W, X, y, reg))
    return cases


def integer_cases(seed):
    """Small integer weights and inputs: integer scores, so that some margins are exactly 0."""
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, d, c, reg in INTEGER_CASES:
        W = torch.randint(-2, 3, (d, c), generator=g).double()
        X = torch.randint(-2, 3, (n, d), generator=g).double()
        y = torch.randint(c, (n,), generator=g)
        cases.append((W, X, y, reg))
    return cases


def kind_of(value):
    """What came back, in words: 'a tensor of shape (3, 4)', 'a tuple of 3 items', 'float'."""
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__


def describe(W, X, reg):
    whole = bool((W == W.round()).all() and (X == X.round()).all())
    return f"W {tuple(W.shape)}, X {tuple(X.shape)}, reg={reg:g}" + (
        " (whole numbers, so some margins are exactly 0)" if whole else "")


def results(student, cases):
    got = student.run(loss_of_each, "svm_loss", cases)
    for (W, X, y, reg), result in zip(cases, got):
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"svm_loss should return a pair (loss, dW), got {kind_of(result)} for {describe(W, X, reg)}.")
        loss, dW = result
        if isinstance(loss, (int, float)):
            loss = torch.tensor(float(loss), dtype=torch.float64)
        yield (W, X, y, reg), loss, dW


def with_bias(X):
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)


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


def compare_trained_classifiers(student, name, training, hint):
    """Train on a fresh split with the student's loss (in the kernel) and the reference (here), same seed; fail
    if the two classifiers predict differently on a test image that is not a near tie for the reference."""
    X, y = fresh_digits(fresh_generator(), DIGITS_NOISE)
    X = with_bias(X)
    X_train, y_train, X_test, y_test = X[:DIGITS_TRAIN], y[:DIGITS_TRAIN], X[DIGITS_TRAIN:], y[DIGITS_TRAIN:]
    seed = fresh_seed()
    W = student.run(train_with_loss, name, X_train, y_train, **training, seed=seed, timeout=60)
    expected_W = train_with_loss("reference", X_train, y_train, **training, seed=seed)
    what = (f"{training['epochs']} epochs of the grader's SGD on your {name} (learning rate {training['lr']}, "
            f"decaying, minibatches of {training['batch_size']}, {DIGITS_TRAIN} digits)")
    assert isinstance(W, torch.Tensor) and W.shape == expected_W.shape and W.is_floating_point(), (
        f"after {what}, W should be a float tensor of shape {tuple(expected_W.shape)}, got "
        f"{tuple(W.shape) if isinstance(W, torch.Tensor) else type(W).__name__}.")
    scores = X_test @ expected_W
    top2 = scores.topk(2, dim=1).values
    decidable = top2[:, 0] - top2[:, 1] > NEAR_TIE * (1 + top2[:, 0].abs())
    expected = scores.argmax(dim=1)
    predicted = (X_test @ W.double().cpu()).argmax(dim=1)
    wrong = int((predicted != expected)[decidable].sum())
    yours, theirs = (predicted == y_test).double().mean(), (expected == y_test).double().mean()
    assert wrong == 0, (
        f"after {what}, the classifier predicts a different digit than one trained the same way on a reference "
        f"loss for {wrong} of {int(decidable.sum())} test images (yours gets {yours:.1%} of them right, the "
        f"reference {theirs:.1%}). {hint}")


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
def test_svm_loss_value_matches_the_hinge_loss(student):
    """svm_loss returns the mean multiclass hinge loss (margin 1, true class left out) plus reg * sum(W**2)"""
    for (W, X, y, reg), loss, _ in results(student, random_cases(1) + integer_cases(5)):
        expected, _ = reference(W, X, y, reg)
        expect_close(loss, expected, name=f"the SVM loss for {describe(W, X, reg)}", hint=LOSS_HINT)


@points(1)
def test_svm_loss_gradient_matches_autograd(student):
    """the dW of svm_loss matches autograd's gradient, regulariser included, and margins of exactly 0 do not count"""
    for (W, X, y, reg), _, dW in results(student, random_cases(2) + integer_cases(6)):
        _, expected = reference(W, X, y, reg)
        expect_close(dW, expected, name=f"dW of svm_loss for {describe(W, X, reg)}", hint=GRAD_HINT)
    # The docstring's "loss and dW are on that device too", on a GPU or the stand-in: it can only fail this test.
    W, X, y, reg = random_cases(7)[1]
    expect_keeps_device(student, "svm_loss", W.float(), X.float(), y, reg, hint=(
        "svm_loss must work on any device and return loss and dW on the device of W and X: build the gradient's "
        "indicator from the margins themselves ((margins > 0).to(X.dtype)), or make any new tensor with "
        "device=X.device. A torch.zeros(N, C) without device= lives on the CPU."))


@points(1)
@requires("test_svm_loss_value_matches_the_hinge_loss", "test_svm_loss_gradient_matches_autograd")
def test_svm_loss_is_implemented_by_hand(student):
    """svm_loss derives its gradient by hand: no autograd, no ready-made margin loss, not even in a helper"""
    W, X, y, reg = random_cases(4)[1]
    expect_implemented_without(student, "svm_loss", FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES,
                               calling=((W, X, y, reg), {}))


@points(1)
def test_svm_classifier_trained_on_fresh_digits_matches_the_reference(student):
    """trained by SGD on svm_loss, a linear classifier predicts fresh digits like one trained on the reference"""
    compare_trained_classifiers(student, "svm_loss", TRAINING, GRAD_HINT)
