"""Hidden tests for discriminator_loss and generator_loss (Chapter 7, section 3.1).

References, in float64: binary cross-entropy with logits written as softplus (torch.nn.functional.softplus is
exact for every logit: softplus(l) = log(1 + e^l), linear for large l), cast to the dtype under test, and autograd
through it for the gradients. Every verdict is taken here.
"""
import torch
from torch.nn.functional import softplus

from dlvision.grading import expect_close, expect_keeps_device, points

DTYPES = (torch.float64, torch.float32)
#: (N_real, N_fake): a batch of one, equal batches, and unequal ones (the loss is a sum of two means).
SIZES = [(1, 1), (5, 5), (8, 3), (2, 9), (64, 64)]
#: Logits where log(sigmoid(l)) underflows to log(0) = -inf: sigmoid(-104) is 0 in float32, sigmoid(-746) in float64.
EXTREMES = [-1e4, -1e3, -750.0, -120.0, -30.0, -1.0, 0.0, 1.0, 30.0, 120.0, 750.0, 1e3, 1e4]

D_HINT = ("discriminator_loss = mean(softplus(-real_logits)) + mean(softplus(fake_logits)): the real samples "
          "labelled 1, the fakes 0, one mean per batch, added (not averaged, not one mean over both batches).")
G_HINT = ("generator_loss is the non-saturating loss mean(-log sigmoid(fake_logits)) = mean(softplus(-fake_logits)), "
          "not the minimax log(1 - sigmoid(fake_logits)).")
STABLE_HINT = ("inf or nan for large logits means log(sigmoid(l)) (or log(1 - sigmoid(l))) was computed directly: "
               "sigmoid(-1e4) rounds to 0. Use softplus: -log sigmoid(l) = softplus(-l), -log(1 - sigmoid(l)) = "
               "softplus(l), or F.logsigmoid / F.binary_cross_entropy_with_logits.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def both_losses(cases):
    """(discriminator_loss(real, fake), generator_loss(fake)) for each case."""
    return [(discriminator_loss(real.clone(), fake.clone()), generator_loss(fake.clone())) for real, fake in cases]


def loss_gradients(real, fake):
    """Gradients of discriminator_loss (wrt real and fake logits) and of generator_loss (wrt fake logits)."""
    import torch

    out = []
    r, f = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
    d = discriminator_loss(r, f)
    if isinstance(d, torch.Tensor) and d.requires_grad:
        d.backward()
        out.append((r.grad, f.grad))
    else:
        out.append(None)
    f = fake.clone().requires_grad_(True)
    g = generator_loss(f)
    if isinstance(g, torch.Tensor) and g.requires_grad:
        g.backward()
        out.append(f.grad)
    else:
        out.append(None)
    return out


# --- helpers on the trusted side -------------------------------------------------------------------------------

def reference_d(real, fake):
    return softplus(-real.double()).mean() + softplus(fake.double()).mean()


def reference_g(fake):
    return softplus(-fake.double()).mean()


def random_cases(seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return [tuple((torch.randn(n, generator=g, dtype=torch.float64) * scale).to(dtype) for n in sizes)
            for dtype in DTYPES for sizes in SIZES]


def extreme_cases():
    cases = []
    for dtype in DTYPES:
        values = torch.tensor(EXTREMES, dtype=dtype)
        cases.append((values, values.flip(0)))
        cases.append((torch.tensor([-1e4], dtype=dtype), torch.tensor([1e4, 1e4], dtype=dtype)))
        cases.append((torch.tensor([1e4, 750.0], dtype=dtype), torch.tensor([-1e4], dtype=dtype)))
    return cases


def describe(real, fake):
    return (f"{len(real)} real and {len(fake)} fake logits, {str(real.dtype).removeprefix('torch.')}, up to "
            f"{max(real.abs().max().item(), fake.abs().max().item()):.3g} in size")


def d_hint(got, real, fake):
    """Name the likely mistake from the student's value."""
    if not (isinstance(got, torch.Tensor) and got.numel() == 1 and torch.isfinite(got).all()):
        return STABLE_HINT if isinstance(got, torch.Tensor) else D_HINT
    value, right = got.double().item(), reference_d(real, fake).item()
    concatenated = softplus(torch.cat([-real.double(), fake.double()])).mean().item()
    swapped = (softplus(real.double()).mean() + softplus(-fake.double()).mean()).item()
    if abs(value - right / 2) < 1e-6 * abs(right):
        return "the loss is half the stated one: add the two means, do not average them. " + D_HINT
    if abs(value - concatenated) < 1e-6 * abs(concatenated):
        return "this is one mean over both batches together; the stated loss adds one mean per batch. " + D_HINT
    if abs(value - swapped) < 1e-6 * abs(swapped):
        return "the labels are swapped: real logits should be pushed up (label 1), fake ones down (label 0)."
    return D_HINT


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_discriminator_loss_is_the_sum_of_the_two_binary_cross_entropies(student):
    """discriminator_loss = mean BCE(real, 1) + mean BCE(fake, 0) from logits, for equal and unequal batches, a batch
    of one, float64 and float32, on the device of its inputs"""
    cases = random_cases(1)
    for (real, fake), (got, _) in zip(cases, student.run(both_losses, cases)):
        expect_close(got, reference_d(real, fake).to(real.dtype), name=f"discriminator_loss for {describe(real, fake)}",
                     hint=d_hint(got, real, fake))
    real, fake = cases[3]
    expect_keeps_device(student, "discriminator_loss", real, fake, hint=(
        "discriminator_loss must return its value on the device of the logits: labels made with torch.ones(n) or "
        "torch.zeros(n) live on the CPU; use torch.ones_like(logits), or softplus, which needs no labels."))


@points(1)
def test_generator_loss_is_the_non_saturating_loss(student):
    """generator_loss = mean(-log sigmoid(fake_logits)), float64 and float32, on the device of its input"""
    cases = random_cases(2)
    for (real, fake), (_, got) in zip(cases, student.run(both_losses, cases)):
        expect_close(got, reference_g(fake).to(fake.dtype), name=f"generator_loss for {len(fake)} fake logits, "
                     f"{str(fake.dtype).removeprefix('torch.')}", hint=G_HINT)
    expect_keeps_device(student, "generator_loss", cases[2][1], hint=(
        "generator_loss must return its value on the device of the logits: make no label tensor on the CPU."))


@points(1)
def test_losses_are_finite_and_exact_for_logits_up_to_1e4(student):
    """both losses give finite, exact values for logits up to 1e4 in size, where log(sigmoid) would be -inf"""
    cases = extreme_cases()
    for (real, fake), (d, g) in zip(cases, student.run(both_losses, cases)):
        expect_close(d, reference_d(real, fake).to(real.dtype), name=f"discriminator_loss for {describe(real, fake)}",
                     hint=STABLE_HINT)
        expect_close(g, reference_g(fake).to(fake.dtype), name=f"generator_loss for {len(fake)} fake logits up to "
                     f"{fake.abs().max().item():.3g} in size, {str(fake.dtype).removeprefix('torch.')}", hint=STABLE_HINT)


@points(1)
def test_loss_gradients_match_autograd_also_for_huge_logits(student):
    """the gradients of both losses match autograd through softplus, and stay finite for logits of +-1e4"""
    g = torch.Generator().manual_seed(4)
    cases = [(torch.randn(6, generator=g, dtype=torch.float64) * 3, torch.randn(4, generator=g, dtype=torch.float64) * 3),
             (torch.tensor(EXTREMES, dtype=torch.float64), torch.tensor(EXTREMES[::2], dtype=torch.float64))]
    for real, fake in cases:
        d_grads, g_grad = student.run(loss_gradients, real, fake)
        leaves = real.clone().requires_grad_(True), fake.clone().requires_grad_(True)
        reference_d(*leaves).backward()
        assert d_grads is not None, ("discriminator_loss returned a value that does not depend on the logits through "
                                     "autograd: do not detach them or call .item().")
        for name, grad, leaf in zip(("real_logits", "fake_logits"), d_grads, leaves):
            expect_close(grad, leaf.grad, name=f"d discriminator_loss / d {name} for {describe(real, fake)}",
                         hint=STABLE_HINT + " " + D_HINT)
        leaf = fake.clone().requires_grad_(True)
        reference_g(leaf).backward()
        assert g_grad is not None, ("generator_loss returned a value that does not depend on the logits through "
                                    "autograd: do not detach them or call .item().")
        expect_close(g_grad, leaf.grad, name=f"d generator_loss / d fake_logits for {len(fake)} logits up to "
                     f"{fake.abs().max().item():.3g} in size", hint=STABLE_HINT + " " + G_HINT)
