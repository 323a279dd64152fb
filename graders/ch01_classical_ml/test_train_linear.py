"""Hidden tests for train_linear (Chapter 1, section 2.3).

train_linear's random numbers are fully specified (initial weights, then one permutation per epoch, all from the
generator), so the reference here replays the same SGD with the same seed and must land on the same W. It
replays in float64 from the same draws (the initial W drawn in X's dtype), so that a float32 answer is compared
with the exact result (THRESHOLDS.md). The loss is a simple one defined by the grader (a squared error to the
one-hot labels), so that these tests do not depend on the student's softmax_loss or svm_loss.
"""
import pytest
import torch

from dlvision.grading import expect_close, expect_keeps_device, points

#: (N, D, C, batch_size, epochs, lr, reg, dtype): a partial last batch, one batch per epoch, one sample,
#: batches of one, float32 and float64.
CASES = [(10, 3, 4, 3, 2, 0.1, 0.01, torch.float64), (7, 5, 2, 7, 3, 0.2, 0.0, torch.float64),
         (1, 2, 3, 4, 2, 0.2, 0.1, torch.float64), (20, 4, 3, 6, 4, 0.05, 0.001, torch.float32),
         (13, 6, 5, 1, 2, 0.02, 0.0, torch.float64), (50, 65, 10, 16, 3, 0.02, 1e-4, torch.float32)]

INIT_HINT = ("Start from W = 0.001 * torch.randn(D, C, generator=generator, dtype=X.dtype) with "
             "C = int(y.max()) + 1, drawn before anything else from the generator (and no other random source).")
SGD_HINT = ("Each epoch draws order = torch.randperm(N, generator=generator) and visits the minibatches "
            "order[0:batch_size], order[batch_size:2 * batch_size], ... (the last may be smaller), updating "
            "W = W - lr * dW after each. Shuffle every epoch, with the generator, and start from the initial W.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def train_each(cases):
    """The student's train_linear with a grader-defined squared-error loss, on each case."""
    import torch

    def squared_error_loss(W, X, y, reg):
        residual = X @ W - torch.nn.functional.one_hot(y, W.shape[1]).to(X.dtype)
        loss = (residual ** 2).sum() / len(X) + reg * (W ** 2).sum()
        return loss, 2 * X.T @ residual / len(X) + 2 * reg * W

    return [train_linear(squared_error_loss, X, y, lr, reg, epochs, batch_size, torch.Generator().manual_seed(seed))
            for X, y, lr, reg, epochs, batch_size, seed in cases]


def train_on_device(X, y, classes, device="cpu"):
    """train_linear with a grader loss, for expect_keeps_device. y answers .max() with the largest label, which the
    stand-in device (no values) cannot compute; the rest goes to the labels."""
    import torch

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

    def loss(W, X, y, reg):
        return (X @ W).sum(), X.T @ (X @ W) / len(X) + 2 * reg * W

    return train_linear(loss, X, Labels(y), 0.1, 0.01, 2, 3, torch.Generator().manual_seed(0))


# --- helpers on the trusted side -------------------------------------------------------------------------------

def squared_error_loss(W, X, y, reg):
    residual = X @ W - torch.nn.functional.one_hot(y, W.shape[1]).to(X.dtype)
    loss = (residual ** 2).sum() / len(X) + reg * (W ** 2).sum()
    return loss, 2 * X.T @ residual / len(X) + 2 * reg * W


def reference(X, y, lr, reg, epochs, batch_size, seed):
    """The same SGD, with the same draws from the generator (the initial W in X's dtype), run in float64 and cast
    back to X's dtype: float32 answers are then compared with the exact result, not with one rounding of it."""
    g = torch.Generator().manual_seed(seed)
    N, D = X.shape
    W = (0.001 * torch.randn(D, int(y.max()) + 1, generator=g, dtype=X.dtype)).double()
    X = X.double()
    for _ in range(epochs):
        shuffled = torch.randperm(X.shape[0], generator=g)
        for first in range(0, N, batch_size):
            rows = shuffled[first:first + batch_size]
            W = W - lr * squared_error_loss(W, X[rows], y[rows], reg)[1]
    return W


def make_cases(seed, epochs=None):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for k, (n, d, c, batch_size, n_epochs, lr, reg, dtype) in enumerate(CASES):
        X = torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype)
        y = torch.randint(c, (n,), generator=g)
        y[-1] = c - 1  # C = c
        cases.append((X, y, lr, reg, n_epochs if epochs is None else epochs, batch_size, 100 * seed + k))
    return cases


def describe(X, y, lr, reg, epochs, batch_size, seed):
    return (f"N={len(X)}, D={X.shape[1]}, C={int(y.max()) + 1}, batch_size={batch_size}, epochs={epochs}, "
            f"lr={lr:g}, reg={reg:g}, {str(X.dtype).removeprefix('torch.')}, seed {seed}")


def check(student, cases, hint):
    for case, W in zip(cases, student.run(train_each, cases)):
        expect_close(W, reference(*case).to(case[0].dtype), name=f"W from train_linear ({describe(*case)})", hint=hint)


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
def test_train_linear_starts_from_the_stated_initialisation(student):
    """with epochs=0, train_linear returns 0.001 * randn(D, C) drawn from the generator, in X's dtype"""
    check(student, make_cases(1, epochs=0), INIT_HINT)


@points(2)
def test_train_linear_replays_minibatch_sgd_exactly(student):
    """train_linear lands on the same W as a reference SGD with the same seed (shuffling, batches, updates)"""
    check(student, make_cases(2) + make_cases(3), SGD_HINT)
    # The docstring's "with the dtype and on the device of X", on a GPU or the stand-in: it can only fail this test.
    X, y = make_cases(4)[0][:2]
    expect_keeps_device(student, train_on_device, X.float(), y, int(y.max()) + 1, hint=(
        "train_linear must work on any device and return W on the device of X: torch.randn(..., generator=generator) "
        "draws on the CPU (the generator lives there), so move the initial W with .to(X.device) before the first "
        "update, and move each permutation there too before indexing X with it."))
