"""Hidden tests for softmax_cross_entropy (Chapter 3, section 1).

References: torch.nn.functional.cross_entropy (mean over the batch) in float64 for the loss, and autograd
through it in float64 for dlogits, cast to the dtype under test.
"""
import ast

import torch

from dlvision.grading import StudentError, expect_close, expect_implemented_without, points

#: (N, C): a batch of one, one class, two classes, odd sizes, a larger batch.
SHAPES = [(1, 1), (1, 3), (2, 2), (5, 7), (7, 3), (64, 10), (33, 17)]

DTYPES = (torch.float64, torch.float32)

#: Names whose use means autograd or a ready-made loss: dotted prefixes, and attribute names.
FORBIDDEN_DOTTED = ["torch.nn", "F.", "torch.autograd", "torch.func", "functorch"]
FORBIDDEN_ATTRIBUTES = {"backward", "grad", "requires_grad_", "cross_entropy", "nll_loss"}

MEAN_HINT = "The loss is the mean over the batch of -log p[i, y[i]], and dlogits = (softmax(logits) - onehot(y)) / N."


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def losses_and_gradients(cases):
    """softmax_cross_entropy(logits, y) for each case, as [loss, dlogits]."""
    return [list(softmax_cross_entropy(logits.clone(), y.clone())) for logits, y in cases]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_cases(seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for dtype in DTYPES:
        for n, c in SHAPES:
            logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(dtype)
            cases.append((logits, torch.randint(0, c, (n,), generator=g)))
    return cases


def reference(logits, y):
    leaf = logits.detach().double().clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(leaf, y)
    loss.backward()
    return loss.detach().to(logits.dtype), leaf.grad.to(logits.dtype)


def describe(logits):
    return f"logits of shape {tuple(logits.shape)}, {str(logits.dtype).removeprefix('torch.')}"


def results(student, cases):
    got = student.run(losses_and_gradients, cases)
    for (logits, _), result in zip(cases, got):
        assert isinstance(result, list) and len(result) == 2, (
            f"softmax_cross_entropy should return a pair (loss, dlogits), got {len(result)} values for "
            f"{describe(logits)}.")
    return got


def scale_hint(got, expected, n, what):
    """A hint naming the likely mistake when got is expected times N, 1/N or -1."""
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and expected.abs().max() > 1e-3):
        return MEAN_HINT
    ratio = (got.double() * expected.double()).sum() / (expected.double() ** 2).sum()
    if n > 1 and abs(ratio - n) < 1e-3 * n:
        return f"{what} is N = {n} times too large: divide by the batch size (the loss is a mean, not a sum)."
    if n > 1 and abs(ratio - 1 / n) < 1e-3:
        return f"{what} is N = {n} times too small: divide by N once, not twice."
    if abs(ratio + 1) < 1e-3:
        return f"{what} has the wrong sign: the loss is -log p[i, y[i]], which is >= 0."
    return MEAN_HINT


def check_losses(student, cases, hint=None):
    for (logits, y), (loss, _) in zip(cases, results(student, cases)):
        expected, _ = reference(logits, y)
        expect_close(loss, expected, name=f"the loss for {describe(logits)}",
                     hint=hint or scale_hint(loss, expected, logits.shape[0], "the loss"))


def check_gradients(student, cases, hint=None):
    for (logits, y), (_, dlogits) in zip(cases, results(student, cases)):
        _, expected = reference(logits, y)
        expect_close(dlogits, expected, name=f"dlogits for {describe(logits)}",
                     hint=hint or scale_hint(dlogits, expected, logits.shape[0], "dlogits"))


def large_cases():
    rows = [[1000.0, 1001.0, 1002.0], [-1e4, 0.0, 1e4], [1e4, 1e4, 1e4], [-1e4, -1e4, -9999.0], [0.0, 1000.0, -5.0]]
    y = torch.tensor([0, 0, 1, 2, 2])
    return [(torch.tensor(rows, dtype=dtype), y) for dtype in DTYPES]


STABILITY_HINT = ("inf or nan for large logits means an exponential overflowed or a log saw 0: subtract each "
                  "row's maximum before exponentiating, and compute log p as shifted - log(sum(exp(shifted))) "
                  "(or with torch.logsumexp), not as log(softmax).")


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_loss_matches_torch_cross_entropy(student):
    """the loss matches torch.nn.functional.cross_entropy (mean over the batch) on many shapes, N = 1 included"""
    check_losses(student, random_cases(1))


@points(2)
def test_dlogits_matches_autograd(student):
    """dlogits matches autograd through torch.nn.functional.cross_entropy, float64 and float32"""
    check_gradients(student, random_cases(2))


@points(1)
def test_loss_and_dlogits_are_stable_for_large_logits(student):
    """the loss and dlogits stay finite and correct for logits up to 1e4 in size"""
    cases = large_cases()
    check_losses(student, cases, STABILITY_HINT)
    check_gradients(student, cases, STABILITY_HINT)


@points(1)
def test_softmax_cross_entropy_is_implemented_by_hand(student):
    """softmax_cross_entropy uses neither autograd nor a ready-made loss from torch.nn"""
    try:  # a function that does not run yet earns nothing here either
        student.run(losses_and_gradients, [(torch.randn(2, 3), torch.tensor([0, 2]))])
    except StudentError as error:
        raise AssertionError(f"softmax_cross_entropy does not run yet ({error}); this check counts once it does."
                             ) from None
    expect_implemented_without(student, "softmax_cross_entropy", FORBIDDEN_DOTTED)
    tree = ast.parse(student.source_of("softmax_cross_entropy"))
    used = sorted({node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} & FORBIDDEN_ATTRIBUTES)
    assert not used, (f"softmax_cross_entropy uses .{used[0]}: compute the loss and its gradient yourself, "
                      "(softmax(logits) - onehot(y)) / N, without autograd or a ready-made loss.")
