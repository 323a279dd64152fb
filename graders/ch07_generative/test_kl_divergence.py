"""Hidden tests for kl_divergence (Chapter 7, section 2.2).

Reference: torch.distributions.kl_divergence(Normal(mu, exp(logvar / 2)), Normal(0, 1)), summed over the latent
dimensions and averaged over the batch, in float64 (an independent implementation of the closed form), and
autograd through it for the gradients. Every verdict is taken here, from the values the student's function returns.
"""
import math

import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

#: (N, D): a batch of one, one latent dimension, odd sizes.
SHAPES = [(1, 1), (1, 5), (7, 1), (4, 3), (16, 8), (33, 2)]
DTYPES = (torch.float64, torch.float32)

FORMULA = "the mean over the batch of -0.5 * sum over dimensions of (1 + logvar - mu^2 - exp(logvar))"


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def kl_of_each(cases):
    """kl_divergence(mu, logvar) for each case, as it came."""
    return [kl_divergence(mu.clone(), logvar.clone()) for mu, logvar in cases]


def kl_gradients(mu, logvar):
    """d kl_divergence / d mu and d logvar, by autograd through the student's function (None if the graph is cut)."""
    import torch

    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    kl = kl_divergence(mu, logvar)
    if not isinstance(kl, torch.Tensor) or not kl.requires_grad:
        return None
    kl.backward()
    return mu.grad, logvar.grad


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(mu, logvar):
    mu, logvar = mu.double(), logvar.double()
    kl = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    return kl.sum(dim=1).mean()


def random_cases(seed, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return [((torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype),
             (torch.randn(shape, generator=g, dtype=torch.float64) * scale).to(dtype))
            for dtype in DTYPES for shape in SHAPES]


def describe(mu):
    return f"mu and logvar of shape {tuple(mu.shape)}, {str(mu.dtype).removeprefix('torch.')}"


def scale_hint(got, expected, n, d):
    """The likely mistake when got is expected times N, 1/N, 1/D, 2 or -1."""
    if not (isinstance(got, torch.Tensor) and got.shape == expected.shape and abs(float(expected)) > 1e-6
            and torch.isfinite(got).all()):
        return f"kl_divergence returns a 0-d tensor: {FORMULA}."
    ratio = float(got.double() / expected.double())
    candidates = [(n, f"N = {n} times too large: average over the batch (mean), do not sum")] if n > 1 else []
    if d > 1:
        candidates.append((1 / d, f"D = {d} times too small: sum over the latent dimensions, do not average"))
    candidates += [(2.0, "twice too large: the formula has a factor -0.5"),
                   (-1.0, "the wrong sign: the KL divergence is >= 0"),
                   (-2.0, "-2 times the right value: the formula has a factor -0.5")]
    for factor, why in candidates:
        if abs(ratio - factor) < 1e-4 * abs(factor):
            return f"kl_divergence is {why}."
    return f"kl_divergence returns {FORMULA}. Check that the variance is exp(logvar), not logvar or exp(logvar / 2)."


def check_values(student, cases, what=""):
    got = student.run(kl_of_each, cases)
    for (mu, logvar), kl in zip(cases, got):
        expected = reference(mu, logvar).to(mu.dtype)
        expect_close(kl, expected, name=f"kl_divergence for {describe(mu)}{what}",
                     hint=scale_hint(kl, expected, mu.shape[0], mu.shape[1]))
    return got


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_kl_matches_the_closed_form_on_many_shapes(student):
    """kl_divergence matches the KL divergence of torch.distributions, summed over dimensions and averaged over
    the batch, on many shapes in float64 and float32, and stays on the device of its inputs"""
    cases = random_cases(1)
    check_values(student, cases)
    mu, logvar = cases[4]
    expect_keeps_device(student, "kl_divergence", mu, logvar, hint=(
        "kl_divergence must return its 0-d tensor on the device of mu: make no new tensor without device= (the 1 "
        "of the formula can stay a Python number)."))


@points(1)
def test_kl_is_zero_for_the_prior_and_known_for_simple_gaussians(student):
    """KL(N(0, I) || N(0, I)) is 0, and hand-worked cases give their closed-form values"""
    cases, expected = [], []
    for dtype in DTYPES:
        for n, d in ((1, 1), (5, 3)):
            cases.append((torch.zeros(n, d, dtype=dtype), torch.zeros(n, d, dtype=dtype)))
            expected.append(0.0)
        # A shifted mean costs mu^2 / 2 per dimension; a variance s^2 costs (s^2 - 1 - log s^2) / 2.
        cases.append((torch.full((2, 4), 3.0, dtype=dtype), torch.zeros(2, 4, dtype=dtype)))
        expected.append(4 * 9 / 2)
        cases.append((torch.zeros(3, 2, dtype=dtype), torch.full((3, 2), math.log(4.0), dtype=dtype)))
        expected.append(2 * (4 - 1 - math.log(4.0)) / 2)
        cases.append((torch.zeros(1, 1, dtype=dtype), torch.full((1, 1), -20.0, dtype=dtype)))
        expected.append((math.exp(-20) - 1 + 20) / 2)
    got = student.run(kl_of_each, cases)
    for (mu, logvar), kl, value in zip(cases, got, expected):
        where = f" (mu = {mu.flatten()[0].item():g}, logvar = {logvar.flatten()[0].item():.4g} everywhere)"
        expect_close(kl, torch.tensor(value, dtype=mu.dtype), name=f"kl_divergence for {describe(mu)}{where}",
                     hint=scale_hint(kl, torch.tensor(value, dtype=torch.float64), mu.shape[0], mu.shape[1])
                     if value else "KL(N(0, I) || N(0, I)) = -0.5 * (1 + 0 - 0 - exp(0)) = 0 in every dimension.")


@points(1)
def test_kl_sums_over_dimensions_and_averages_over_the_batch(student):
    """repeating the batch leaves the KL unchanged; repeating the latent dimensions doubles it"""
    g = torch.Generator().manual_seed(3)
    mu, logvar = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    cases = [(mu, logvar), (mu.repeat(3, 1), logvar.repeat(3, 1)), (mu.repeat(1, 2), logvar.repeat(1, 2))]
    base, batch, dims = student.run(kl_of_each, cases)
    expected = reference(mu, logvar)
    expect_close(base, expected, name="kl_divergence for mu, logvar of shape (5, 3)", hint=scale_hint(base, expected, 5, 3))
    expect_close(batch, expected, name="kl_divergence of the same 5 rows repeated 3 times (15 rows)",
                 hint="Average over the batch: the same rows repeated must give the same KL (a sum would triple it).")
    expect_close(dims, 2 * expected, name="kl_divergence of the same 3 dimensions repeated twice (6 dimensions)",
                 hint="Sum over the latent dimensions: each dimension adds its own KL (a mean would not change).")


@points(1)
def test_kl_gradients_match_autograd(student):
    """the gradients of kl_divergence with respect to mu and logvar match autograd through the closed form"""
    g = torch.Generator().manual_seed(4)
    mu, logvar = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    got = student.run(kl_gradients, mu, logvar)
    assert got is not None, ("kl_divergence returned a value that does not depend on mu and logvar through "
                             "autograd: do not detach them, call .item() or build a new tensor from their values.")
    leaves = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    reference(*leaves).backward()
    for name, grad, leaf in zip(("mu", "logvar"), got, leaves):
        expect_close(grad, leaf.grad, name=f"d kl_divergence / d {name}",
                     hint="d/dmu = mu / N and d/dlogvar = (exp(logvar) - 1) / (2 N): no part of the formula may be "
                          "detached.")


@points(1)
@requires("test_kl_matches_the_closed_form_on_many_shapes")
def test_kl_does_not_use_torch_distributions(student):
    """kl_divergence is written with tensor operations, without torch.distributions"""
    g = torch.Generator().manual_seed(5)
    mu, logvar = torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, 2, generator=g, dtype=torch.float64)
    expect_implemented_without(student, "kl_divergence", ["torch.distributions"], attributes={"rsample", "log_prob"},
                               calling=((mu, logvar), {}))
