"""Hidden tests for svm_loss (Chapter 1, section 2.2).

The reference is autograd in float64 through the multiclass hinge loss written with torch built-ins:
(1/N) sum_i sum_{j != y_i} relu(s_ij - s_iy_i + 1) + reg * (W ** 2).sum(), from the same W, X, y and reg that the
student's function receives. Random inputs keep every margin away from the kink at 0. The accuracy test trains
with the grader's own SGD loop (in the student's kernel, calling the student's svm_loss) and scores the held-out
digits here; its bound is in THRESHOLDS.md.
"""
import ast

import torch

from dlvision.data import load_digits
from dlvision.grading import StudentError, expect_close, expect_implemented_without, points

#: (N, D, C, reg): one sample, one feature, two classes, digits-sized problems, with and without regularisation.
CASES = [(1, 1, 2, 0.0), (5, 3, 4, 0.1), (20, 65, 10, 1e-3), (7, 10, 3, 1.3), (64, 65, 10, 0.0), (3, 2, 2, 0.5)]

#: The grader's training run and the accuracy it must reach (THRESHOLDS.md: the reference gets 0.944 to 0.951).
TRAINING = {"lr": 0.1, "reg": 1e-4, "epochs": 20, "batch_size": 64, "seed": 0}
THRESHOLD = 0.92

FORBIDDEN_DOTTED = ["torch.autograd", "torch.func", "torch.nn", "F.", "sklearn"]
FORBIDDEN_ATTRIBUTES = {"backward", "multi_margin_loss", "hinge_embedding_loss", "grad"}

LOSS_HINT = ("loss = (1/N) sum_i sum_{j != y_i} max(0, s_ij - s_iy_i + 1) + reg * (W ** 2).sum() (no 1/2). Leave "
             "the true class out of the sum: its own margin is always max(0, 1) = 1, so a loss that is 1 too large "
             "per sample counts it.")
GRAD_HINT = ("With m_ij = s_ij - s_iy_i + 1: dL/ds_ij = 1 for every wrong class j with m_ij > 0, and dL/ds_iy_i = "
             "minus the number of such classes; then dW = X.T @ dS / N + 2 * reg * W.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def loss_of_each(name, cases):
    """The student's loss function `name` on each (W, X, y, reg)."""
    return [tuple(globals()[name](W, X, y, reg)) for W, X, y, reg in cases]


def train_with_student_loss(name, X, y, lr, reg, epochs, batch_size, seed):
    """The grader's own minibatch SGD (linearly decaying learning rate) on the student's loss; returns W."""
    import torch

    loss_fn = globals()[name]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and immune to a busy second core
    try:
        g = torch.Generator().manual_seed(seed)
        N, D = X.shape
        W = 0.001 * torch.randn(D, int(y.max()) + 1, generator=g, dtype=X.dtype)
        steps, step = epochs * -(-N // batch_size), 0
        for _ in range(epochs):
            order = torch.randperm(N, generator=g)
            for start in range(0, N, batch_size):
                batch = order[start:start + batch_size]
                _, dW = loss_fn(W, X[batch], y[batch], reg)
                W = W - lr * (1 - step / steps) * dW
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
    loss = (torch.relu(margins) * others).sum() / len(X) + reg * (W ** 2).sum()
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


def describe(W, X, reg):
    return f"W {tuple(W.shape)}, X {tuple(X.shape)}, reg={reg:g}"


def results(student, cases):
    got = student.run(loss_of_each, "svm_loss", cases)
    for (W, X, y, reg), result in zip(cases, got):
        assert isinstance(result, tuple) and len(result) == 2, (
            f"svm_loss should return a pair (loss, dW), got {type(result).__name__} for {describe(W, X, reg)}.")
        loss, dW = result
        if isinstance(loss, (int, float)):
            loss = torch.tensor(float(loss), dtype=torch.float64)
        yield (W, X, y, reg), loss, dW


def with_bias(X):
    X = X.reshape(len(X), -1).double()
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_svm_loss_value_matches_the_hinge_loss(student):
    """svm_loss returns the mean multiclass hinge loss (margin 1, true class left out) plus reg * sum(W**2)"""
    for (W, X, y, reg), loss, _ in results(student, random_cases(1)):
        expected, _ = reference(W, X, y, reg)
        expect_close(loss, expected, name=f"the SVM loss for {describe(W, X, reg)}", hint=LOSS_HINT)


@points(1)
def test_svm_loss_gradient_matches_autograd(student):
    """the dW of svm_loss matches autograd's gradient of the same loss, regulariser included"""
    for (W, X, y, reg), _, dW in results(student, random_cases(2)):
        _, expected = reference(W, X, y, reg)
        expect_close(dW, expected, name=f"dW of svm_loss for {describe(W, X, reg)}", hint=GRAD_HINT)


@points(1)
def test_svm_loss_is_implemented_by_hand(student):
    """svm_loss derives its gradient by hand: no autograd, no ready-made margin loss"""
    try:  # a function that does not run yet earns nothing here either
        student.run(loss_of_each, "svm_loss", random_cases(4)[1:2])
    except StudentError as error:
        raise AssertionError(f"svm_loss does not run yet ({error}); this check counts once it does.") from None
    expect_implemented_without(student, "svm_loss", FORBIDDEN_DOTTED)
    tree = ast.parse(student.source_of("svm_loss"))
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & FORBIDDEN_ATTRIBUTES)
    assert not used, (f"svm_loss uses .{used[0]}, which this exercise asks you to replace by your own formulas "
                      "for the loss and for its gradient dW.")


@points(1)
def test_svm_classifier_is_accurate_on_the_digits(student):
    """trained by SGD on svm_loss, a linear classifier gets at least 92% of the held-out digits right"""
    X_train, y_train, X_test, y_test = load_digits()
    W = student.run(train_with_student_loss, "svm_loss", with_bias(X_train), y_train, **TRAINING, timeout=60)
    accuracy = ((with_bias(X_test) @ W.double().cpu()).argmax(dim=1) == y_test).double().mean().item()
    assert accuracy >= THRESHOLD, (
        f"after {TRAINING['epochs']} epochs of SGD on your svm_loss (learning rate {TRAINING['lr']}, decaying, "
        f"minibatches of {TRAINING['batch_size']}), the classifier got {accuracy:.1%} of the {len(y_test)} test "
        f"digits right; at least {THRESHOLD:.0%} was expected (a correct loss gets about 95%). {GRAD_HINT}")
