"""Hidden tests for vae_loss (Chapter 7, section 2.3).

Reference: torch.nn.functional.binary_cross_entropy (reduction "sum", which clamps each log at -100) divided by the
batch size, plus beta times the KL divergence of torch.distributions (summed over dimensions, averaged over the
batch), all in float64, and autograd through it. Every verdict is taken here.
"""
import torch
from torch.distributions import Normal
from torch.distributions import kl_divergence as torch_kl
from torch.nn.functional import binary_cross_entropy

from dlvision.grading import expect_close, expect_keeps_device, points

#: (image shape, latent dimensions, beta): a batch of one, flat images, 16x16 digits, beta 0, 1 and others.
CASES = [((1, 1, 4, 4), 2, 1.0), ((3, 10), 1, 1.0), ((5, 1, 16, 16), 8, 1.0), ((4, 1, 16, 16), 3, 0.0),
         ((6, 2, 3, 3), 4, 0.5), ((2, 7), 5, 4.0)]
DTYPES = (torch.float64, torch.float32)

HINT = ("vae_loss = binary cross-entropy summed over all pixels and divided by the batch size N (not a mean over "
        "pixels), plus beta * kl_divergence(mu, logvar).")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def losses_of_each(cases):
    """vae_loss(x, x_recon, mu, logvar, beta=beta) for each case, as it came."""
    return [vae_loss(x.clone(), r.clone(), mu.clone(), lv.clone(), beta=beta) for x, r, mu, lv, beta in cases]


def loss_gradients(x, x_recon, mu, logvar, beta):
    """Gradients of vae_loss with respect to x_recon, mu and logvar (None if the graph is cut)."""
    import torch

    leaves = [t.clone().requires_grad_(True) for t in (x_recon, mu, logvar)]
    loss = vae_loss(x, leaves[0], leaves[1], leaves[2], beta=beta)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return None
    loss.backward()
    return [t.grad for t in leaves]


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference(x, x_recon, mu, logvar, beta):
    x, x_recon, mu, logvar = (t.double() for t in (x, x_recon, mu, logvar))
    kl = torch_kl(Normal(mu, torch.exp(0.5 * logvar)), Normal(torch.zeros_like(mu), torch.ones_like(mu)))
    return binary_cross_entropy(x_recon, x, reduction="sum") / x.shape[0] + beta * kl.sum(dim=1).mean()


def random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for dtype in DTYPES:
        for shape, latent, beta in CASES:
            x = torch.rand(shape, generator=g, dtype=torch.float64)
            x = torch.where(torch.rand(shape, generator=g, dtype=torch.float64) < 0.3, x.round(), x)  # some 0s and 1s
            x_recon = 0.02 + 0.96 * torch.rand(shape, generator=g, dtype=torch.float64)
            mu, logvar = (torch.randn(shape[0], latent, generator=g, dtype=torch.float64) for _ in range(2))
            cases.append(tuple(t.to(dtype) for t in (x, x_recon, mu, logvar)) + (beta,))
    return cases


def describe(x, beta):
    return f"x of shape {tuple(x.shape)}, {str(x.dtype).removeprefix('torch.')}, beta={beta:g}"


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_vae_loss_matches_bce_summed_over_pixels_plus_beta_kl(student):
    """vae_loss equals BCE summed over pixels / N + beta * KL, for several shapes, betas (0 included, and the default
    1) and dtypes, on the device of its inputs"""
    cases = random_cases(1)
    for (x, r, mu, lv, beta), got in zip(cases, student.run(losses_of_each, cases)):
        expect_close(got, reference(x, r, mu, lv, beta).to(x.dtype), name=f"vae_loss for {describe(x, beta)}",
                     hint=HINT)
    x, r, mu, lv, beta = cases[4]
    expect_close(student.vae_loss(x, r, mu, lv), reference(x, r, mu, lv, 1.0).to(x.dtype),
                 name=f"vae_loss without beta for {describe(x, 1.0)}", hint="beta defaults to 1.0.")
    x, r, mu, lv, beta = cases[2]
    expect_keeps_device(student, "vae_loss", x, r, mu, lv, beta=beta, hint=(
        "vae_loss must return its value on the device of its inputs: make no new tensor without device= (constants "
        "such as 1 and -100 can stay Python numbers)."))


@points(1)
def test_vae_loss_is_finite_where_the_decoder_outputs_exactly_0_or_1(student):
    """x_recon exactly 0 or 1 gives finite values: 0 where the target agrees, 100 per pixel where it does not
    (each log clamped at -100)"""
    cases = []
    for dtype in DTYPES:
        x = torch.tensor([[0.0, 1.0, 0.0, 1.0, 0.5, 0.25], [1.0, 1.0, 0.0, 0.0, 0.75, 1.0]], dtype=dtype)
        x_recon = torch.tensor([[0.0, 1.0, 1.0, 0.0, 0.0, 1.0], [1.0, 0.5, 0.0, 0.9, 1.0, 0.3]], dtype=dtype)
        cases.append((x, x_recon, torch.zeros(2, 3, dtype=dtype), torch.zeros(2, 3, dtype=dtype), 1.0))
        cases.append((x[:1, :2], x_recon[:1, :2], torch.zeros(1, 2, dtype=dtype), torch.zeros(1, 2, dtype=dtype), 1.0))
    for (x, r, mu, lv, beta), got in zip(cases, student.run(losses_of_each, cases)):
        expect_close(got, reference(x, r, mu, lv, beta).to(x.dtype),
                     name=f"vae_loss with decoder outputs exactly 0 and 1, {describe(x, beta)}",
                     hint="Clamp each log below at -100 before multiplying by the target, as "
                          "torch.nn.functional.binary_cross_entropy does: 0 * log(0) would be nan, and adding a small "
                          "epsilon inside the log gives another value (log(1e-8) = -18.4, not -100).")


@points(1)
def test_vae_loss_gradients_match_autograd(student):
    """the gradients of vae_loss with respect to x_recon, mu and logvar match autograd through the reference"""
    x, r, mu, lv, beta = random_cases(3)[4]
    got = student.run(loss_gradients, x, r, mu, lv, beta)
    assert got is not None, ("vae_loss returned a value that does not depend on x_recon, mu and logvar through "
                             "autograd: do not detach them or call .item().")
    leaves = [t.clone().requires_grad_(True) for t in (r, mu, lv)]
    reference(x, *leaves, beta).backward()
    for name, grad, leaf in zip(("x_recon", "mu", "logvar"), got, leaves):
        expect_close(grad, leaf.grad, name=f"d vae_loss / d {name}", hint=HINT)
