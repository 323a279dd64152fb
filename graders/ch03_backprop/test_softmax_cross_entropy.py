"""Hidden tests for softmax_cross_entropy (Chapter 3, section 1).

References: torch.nn.functional.cross_entropy (mean over the batch) in float64 for the loss, and autograd
through it in float64 for dlogits, cast to the dtype under test. Every verdict is taken here, from the raw
(loss, dlogits) the student's function returns.
"""
import torch
from torch.nn.functional import cross_entropy

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

#: (N, C): a batch of one, one class, two classes, odd sizes, a larger batch.
SHAPES = [(1, 1), (1, 3), (2, 2), (5, 7), (7, 3), (64, 10), (33, 17)]

DTYPES = (torch.float64, torch.float32)

#: Off limits (the notebook's introduction): autograd in any form, torch.nn (torch.nn.functional included).
FORBIDDEN = ["torch.nn", "torch.autograd", "torch.func", "torch.Tensor.backward", "torch.Tensor.requires_grad_"]
FORBIDDEN_ATTRIBUTES = {"backward", "requires_grad", "requires_grad_", "retain_grad", "cross_entropy",
                        "nll_loss"}

MEAN_HINT = "The loss is the mean over the batch of -log p[i, y[i]], and dlogits = (softmax(logits) - onehot(y)) / N."


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def losses_and_gradients(cases):
    """softmax_cross_entropy(logits, y) for each case, returned as it came."""
    return [softmax_cross_entropy(logits.clone(), y.clone()) for logits, y in cases]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def random_cases(seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for dtype in DTYPES:
        for n, c in SHAPES:
            logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(dtype)
            cases.append((logits, torch.randint(0, c, (n,), generator=g)))
    return cases


def large_cases():
    rows = [[1000.0, 1001.0, 1002.0], [-1e4, 0.0, 1e4], [1e4, 1e4, 1e4], [-1e4, -1e4, -9999.0], [0.0, 1000.0, -5.0]]
    y = torch.tensor([0, 0, 1, 2, 2])
    return [(torch.tensor(rows, dtype=dtype), y) for dtype in DTYPES]


def reference(logits, y):
    leaf = logits.detach().double().clone().requires_grad_(True)
    loss = cross_entropy(leaf, y)
    loss.backward()
    return loss.detach().to(logits.dtype), leaf.grad.to(logits.dtype)


def describe(logits):
    return f"logits of shape {tuple(logits.shape)}, {str(logits.dtype).removeprefix('torch.')}"


def results(student, cases):
    """The student's (loss, dlogits) for each case, after checking that each is a pair."""
    got = student.run(losses_and_gradients, cases)
    for (logits, _), result in zip(cases, got):
        found = (f"a tensor of shape {tuple(result.shape)}" if isinstance(result, torch.Tensor) else
                 f"{len(result)} values" if isinstance(result, (tuple, list)) else f"a {type(result).__name__}")
        assert isinstance(result, (tuple, list)) and len(result) == 2, (
            f"softmax_cross_entropy should return a pair (loss, dlogits) for {describe(logits)}, got {found}.")
    return got


def scale_hint(got, expected, n, what):
    """A hint naming the likely mistake when got is expected times N, 1/N or -1."""
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and expected.abs().max() > 1e-3
            and torch.isfinite(got).all()):
        return MEAN_HINT
    ratio = (got.double() * expected.double()).sum() / (expected.double() ** 2).sum()
    if n > 1 and abs(ratio - n) < 1e-3 * n:
        return f"{what} is N = {n} times too large: divide by the batch size (the loss is a mean, not a sum)."
    if n > 1 and abs(ratio - 1 / n) < 1e-3:
        return f"{what} is N = {n} times too small: divide by N once, not twice."
    if abs(ratio + 1) < 1e-3:
        return f"{what} has the wrong sign: the loss is -log p[i, y[i]], which is >= 0."
    return MEAN_HINT


STABILITY_HINT = ("inf or nan for large logits means an exponential overflowed or a log saw 0: subtract each "
                  "row's own maximum before exponentiating, and compute log p as shifted - log(sum(exp(shifted))) "
                  "(or with torch.logsumexp), not as log(softmax).")


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_loss_matches_torch_cross_entropy(student):
    """the loss matches torch.nn.functional.cross_entropy (mean over the batch) on many shapes, N = 1 included"""
    cases = random_cases(1)
    for (logits, y), (loss, _) in zip(cases, results(student, cases)):
        expected, _ = reference(logits, y)
        expect_close(loss, expected, name=f"the loss for {describe(logits)}",
                     hint=scale_hint(loss, expected, logits.shape[0], "the loss"))


@points(2)
def test_dlogits_matches_autograd(student):
    """dlogits matches autograd through torch.nn.functional.cross_entropy, float64 and float32"""
    cases = random_cases(2)
    for (logits, y), (_, dlogits) in zip(cases, results(student, cases)):
        _, expected = reference(logits, y)
        expect_close(dlogits, expected, name=f"dlogits for {describe(logits)}",
                     hint=scale_hint(dlogits, expected, logits.shape[0], "dlogits"))
    # The docstring's "any device ... dlogits of the device of logits", on a GPU or the stand-in (logits and y both
    # on the device under test): it can only fail this test, never earn a point of its own.
    logits, y = cases[4]
    expect_keeps_device(student, "softmax_cross_entropy", logits, y, hint=(
        "softmax_cross_entropy must work on any device and return the loss and dlogits on the device of logits. "
        "Make every new tensor (the row numbers torch.arange(N), a one-hot matrix) with device=logits.device, or "
        "avoid new tensors: dlogits = softmax(logits), then subtract 1 at [torch.arange(N, device=logits.device), y]."
    ))


@points(1)
def test_loss_and_dlogits_are_stable_for_large_logits(student):
    """the loss and dlogits stay finite and correct for logits up to 1e4 in size"""
    cases = large_cases()
    for (logits, y), (loss, dlogits) in zip(cases, results(student, cases)):
        expected_loss, expected_dlogits = reference(logits, y)
        for what, got, expected in (("the loss", loss, expected_loss), ("dlogits", dlogits, expected_dlogits)):
            finite = isinstance(got, torch.Tensor) and bool(torch.isfinite(got).all())
            expect_close(got, expected, name=f"{what} for large {describe(logits)}",
                         hint=scale_hint(got, expected, logits.shape[0], what) if finite else STABILITY_HINT)


@points(1)
@requires("test_loss_matches_torch_cross_entropy", "test_dlogits_matches_autograd")
def test_softmax_cross_entropy_is_implemented_by_hand(student):
    """softmax_cross_entropy uses neither autograd nor a ready-made loss from torch.nn"""
    g = torch.Generator().manual_seed(5)
    logits, y = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.tensor([0, 2, 1, 2])
    try:
        expect_implemented_without(student, "softmax_cross_entropy", FORBIDDEN, attributes=FORBIDDEN_ATTRIBUTES,
                                   calling=((logits, y), {}))
    except AssertionError as error:
        raise AssertionError(f"{error} Compute the loss from the shifted logits and its gradient as "
                             "(softmax(logits) - onehot(y)) / N, without autograd or torch.nn.") from None
