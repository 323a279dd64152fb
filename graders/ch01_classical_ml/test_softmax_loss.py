"""Hidden tests for softmax_loss (Chapter 1, section 2.1).

The reference is autograd in float64 through torch.nn.functional.cross_entropy(X @ W, y) + reg * (W ** 2).sum(),
computed here from the same W, X, y and reg that the student's function receives. The accuracy test trains with
the grader's own SGD loop (in the student's kernel, calling the student's softmax_loss) and scores the held-out
digits here; its bound is in THRESHOLDS.md.
"""
import ast

import torch

from dlvision.data import load_digits
from dlvision.grading import StudentError, expect_close, expect_implemented_without, points

#: (N, D, C, reg): one sample, one feature, two classes, digits-sized problems, with and without regularisation.
CASES = [(1, 1, 2, 0.0), (5, 3, 4, 0.1), (20, 65, 10, 1e-3), (7, 10, 3, 1.3), (64, 65, 10, 0.0), (3, 2, 2, 0.5)]

#: The grader's training run and the accuracy it must reach (THRESHOLDS.md: the reference gets 0.949 to 0.960).
TRAINING = {"lr": 1.0, "reg": 1e-4, "epochs": 20, "batch_size": 64, "seed": 0}
THRESHOLD = 0.93

FORBIDDEN_DOTTED = ["torch.autograd", "torch.func", "torch.nn", "F.", "torch.softmax", "torch.log_softmax",
                    "torch.logsumexp", "torch.special", "sklearn"]
FORBIDDEN_ATTRIBUTES = {"backward", "softmax", "log_softmax", "logsumexp", "cross_entropy", "nll_loss", "grad"}

LOSS_HINT = ("loss = mean over the N samples of -log softmax(X @ W)[i, y[i]], plus reg * (W ** 2).sum() (no 1/2). "
             "With shifted scores s, log softmax(s)[i, c] = s[i, c] - log(sum_j exp(s[i, j])).")
GRAD_HINT = ("dW = X.T @ (P - Y_onehot) / N + 2 * reg * W, where P holds the softmax probabilities: the mean over "
             "the samples (divide by N) and the regulariser's gradient 2 * reg * W are both part of it.")
SHIFT_HINT = ("Subtract each row's maximum score before exponentiating (scores - scores.amax(dim=1, keepdim=True)): "
              "the loss and its gradient do not change, and exp never overflows.")


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
    loss = torch.nn.functional.cross_entropy(X @ W, y) + reg * (W ** 2).sum()
    loss.backward()
    return loss.detach(), W.grad


def random_cases(seed, weight_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for n, d, c, reg in CASES:
        W = torch.randn(d, c, generator=g, dtype=torch.float64) * weight_scale
        X = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = torch.randint(c, (n,), generator=g)
        cases.append((W, X, y, reg))
    return cases


def describe(W, X, reg):
    return f"W {tuple(W.shape)}, X {tuple(X.shape)}, reg={reg:g}"


def results(student, cases):
    got = student.run(loss_of_each, "softmax_loss", cases)
    for (W, X, y, reg), result in zip(cases, got):
        assert isinstance(result, tuple) and len(result) == 2, (
            f"softmax_loss should return a pair (loss, dW), got {type(result).__name__} for {describe(W, X, reg)}.")
        loss, dW = result
        if isinstance(loss, (int, float)):
            loss = torch.tensor(float(loss), dtype=torch.float64)
        yield (W, X, y, reg), loss, dW


def with_bias(X):
    X = X.reshape(len(X), -1).double()
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_softmax_loss_value_matches_cross_entropy(student):
    """softmax_loss returns the mean cross-entropy plus reg * sum(W**2), for 1 to 64 samples and 2 to 10 classes"""
    for (W, X, y, reg), loss, _ in results(student, random_cases(1)):
        expected, _ = reference(W, X, y, reg)
        expect_close(loss, expected, name=f"the softmax loss for {describe(W, X, reg)}", hint=LOSS_HINT)


@points(1)
def test_softmax_loss_gradient_matches_autograd(student):
    """the dW of softmax_loss matches autograd's gradient of the same loss, regulariser included"""
    for (W, X, y, reg), _, dW in results(student, random_cases(2)):
        _, expected = reference(W, X, y, reg)
        expect_close(dW, expected, name=f"dW of softmax_loss for {describe(W, X, reg)}", hint=GRAD_HINT)


@points(1)
def test_softmax_loss_is_stable_for_huge_scores(student):
    """softmax_loss and its gradient stay finite and correct for scores in the thousands"""
    for (W, X, y, reg), loss, dW in results(student, random_cases(3, weight_scale=1000.0)):
        expected_loss, expected_dW = reference(W, X, y, reg)
        expect_close(loss, expected_loss, name=f"the softmax loss for scores up to "
                     f"{(X @ W).abs().max().item():.0f}, {describe(W, X, reg)}", hint=SHIFT_HINT)
        expect_close(dW, expected_dW, name=f"dW of softmax_loss for scores up to "
                     f"{(X @ W).abs().max().item():.0f}, {describe(W, X, reg)}", hint=SHIFT_HINT)


@points(1)
def test_softmax_loss_is_implemented_by_hand(student):
    """softmax_loss derives its gradient by hand: no autograd, no ready-made softmax or cross-entropy"""
    try:  # a function that does not run yet earns nothing here either
        student.run(loss_of_each, "softmax_loss", random_cases(4)[1:2])
    except StudentError as error:
        raise AssertionError(f"softmax_loss does not run yet ({error}); this check counts once it does.") from None
    expect_implemented_without(student, "softmax_loss", FORBIDDEN_DOTTED)
    tree = ast.parse(student.source_of("softmax_loss"))
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & FORBIDDEN_ATTRIBUTES)
    assert not used, (f"softmax_loss uses .{used[0]}, which this exercise asks you to replace by your own formulas "
                      "for the loss and for its gradient dW.")


@points(1)
def test_softmax_classifier_is_accurate_on_the_digits(student):
    """trained by SGD on softmax_loss, a linear classifier gets at least 93% of the held-out digits right"""
    X_train, y_train, X_test, y_test = load_digits()
    W = student.run(train_with_student_loss, "softmax_loss", with_bias(X_train), y_train, **TRAINING, timeout=60)
    accuracy = ((with_bias(X_test) @ W.double().cpu()).argmax(dim=1) == y_test).double().mean().item()
    assert accuracy >= THRESHOLD, (
        f"after {TRAINING['epochs']} epochs of SGD on your softmax_loss (learning rate {TRAINING['lr']}, decaying, "
        f"minibatches of {TRAINING['batch_size']}), the classifier got {accuracy:.1%} of the {len(y_test)} test "
        f"digits right; at least {THRESHOLD:.0%} was expected (a correct loss gets about 95%). {GRAD_HINT}")
