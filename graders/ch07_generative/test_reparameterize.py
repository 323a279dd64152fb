"""Hidden tests for reparameterize (Chapter 7, section 2.1).

The docstring fixes how the noise is drawn: eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype,
device=mu.device), in one call. The grader replays that draw here with a generator seeded alike and compares,
number for number; the gradients are those of mu + exp(logvar / 2) * eps, worked out here; the moments of many
draws with PyTorch's global generator are judged here from the samples.
"""
import torch

from dlvision.grading import expect_close, expect_implemented_without, expect_keeps_device, points, requires

SHAPES = [(1, 1), (1, 4), (5, 3), (16, 8), (7,)]
DTYPES = (torch.float64, torch.float32)

DRAW_HINT = ("Draw eps with exactly one call, eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, "
             "device=mu.device), and return mu + torch.exp(0.5 * logvar) * eps (the standard deviation is "
             "exp(logvar / 2)).")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def draws_then_next(cases):
    """For each (mu, logvar, seed): reparameterize with a generator seeded so, then the generator's next 3 numbers."""
    import torch

    out = []
    for mu, logvar, seed in cases:
        generator = torch.Generator().manual_seed(seed)
        z = reparameterize(mu.clone(), logvar.clone(), generator)
        out.append((z, torch.randn(3, generator=generator, dtype=torch.float64)))
    return out


def gradients_through_a_draw(mu, logvar, upstream, seed):
    """The gradients of sum(z * upstream) with respect to mu and logvar (None where the graph is cut)."""
    import torch

    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(seed))
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return None
    (z * upstream).sum().backward()
    return mu.grad, logvar.grad


def many_global_draws(mu, logvar, seed):
    """reparameterize with generator=None (PyTorch's global random numbers), seeded."""
    import torch

    torch.manual_seed(seed)
    return reparameterize(mu, logvar, None)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def expected_draw(mu, logvar, seed):
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed), dtype=mu.dtype)
    return (mu.double() + torch.exp(0.5 * logvar.double()) * eps.double()).to(mu.dtype), eps


def random_cases(seed):
    g = torch.Generator().manual_seed(seed)
    cases = []
    for dtype in DTYPES:
        for shape in SHAPES:
            mu = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).to(dtype)
            logvar = (torch.randn(shape, generator=g, dtype=torch.float64) * 2).to(dtype)
            cases.append((mu, logvar, int(torch.randint(0, 2 ** 31, (), generator=g))))
    return cases


def describe(mu):
    return f"mu of shape {tuple(mu.shape)}, {str(mu.dtype).removeprefix('torch.')}"


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_reparameterize_replays_the_stated_draw(student):
    """z = mu + exp(logvar / 2) * eps with eps drawn in one call of torch.randn(mu.shape, generator=...), exactly,
    on many shapes in float64 and float32, on the device of mu"""
    cases = random_cases(1)
    got = student.run(draws_then_next, cases)
    for (mu, logvar, seed), (z, after) in zip(cases, got):
        expected, eps = expected_draw(mu, logvar, seed)
        # float32: mu and sigma * eps may nearly cancel, so the rounding error scales with the terms, not the sum.
        terms = (mu.double().abs() + (torch.exp(0.5 * logvar.double()) * eps.double()).abs()).max().item()
        atol = None if mu.dtype == torch.float64 else 1e-6 * max(1.0, terms)
        expect_close(z, expected, atol=atol, name=f"reparameterize for {describe(mu)} with a seeded generator",
                     hint=DRAW_HINT)
        g = torch.Generator().manual_seed(seed)
        torch.randn(mu.shape, generator=g, dtype=mu.dtype)
        expect_close(after, torch.randn(3, generator=g, dtype=torch.float64),
                     name=f"the generator's next numbers after reparameterize for {describe(mu)}",
                     hint="Draw from the generator exactly once, with the shape of mu: no other draw from it.")
    mu, logvar, _ = cases[3]
    expect_keeps_device(student, "reparameterize", mu, logvar, None, hint=(
        "Create eps on the device of mu (device=mu.device, dtype=mu.dtype): with mu on a GPU, noise made on the CPU "
        "(or on the notebook's global device) cannot be added to it."))


@points(1)
def test_reparameterize_passes_gradients_to_mu_and_logvar(student):
    """gradients flow through the sample: dz/dmu = 1 and dz/dlogvar = exp(logvar / 2) * eps / 2"""
    g = torch.Generator().manual_seed(2)
    mu, logvar = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    upstream = torch.randn(4, 3, generator=g, dtype=torch.float64)
    got = student.run(gradients_through_a_draw, mu, logvar, upstream, 9)
    assert got is not None, ("reparameterize returned a sample that does not depend on mu and logvar through "
                             "autograd: do not detach them or build the sample from their values.")
    _, eps = expected_draw(mu, logvar, 9)
    expect_close(got[0], upstream, name="d sum(z * upstream) / d mu",
                 hint="z = mu + sigma * eps, so dz/dmu = 1: mu must not be detached.")
    expect_close(got[1], upstream * 0.5 * torch.exp(0.5 * logvar) * eps, name="d sum(z * upstream) / d logvar",
                 hint="dz/dlogvar = exp(logvar / 2) * eps / 2: logvar must not be detached, and sigma = exp(logvar / 2).")


@points(1)
def test_reparameterize_has_the_right_mean_and_spread_with_the_global_generator(student):
    """with generator=None, 200000 draws have mean mu and standard deviation exp(logvar / 2) per dimension"""
    mu = torch.tensor([0.0, 2.0, -1.0, 5.0], dtype=torch.float64).expand(200_000, 4).contiguous()
    logvar = torch.tensor([0.0, -2.0, 1.0, 3.0], dtype=torch.float64).expand(200_000, 4).contiguous()
    z = student.run(many_global_draws, mu, logvar, 11)
    assert isinstance(z, torch.Tensor) and z.shape == mu.shape, (
        f"reparameterize(mu, logvar, None) for mu of shape {tuple(mu.shape)} should return a tensor of that shape, "
        f"got {tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}.")
    z = z.double()
    sigma = torch.exp(0.5 * logvar[0])
    # Standard errors: sigma / sqrt(n) for the mean, about sigma / sqrt(2 n) for the standard deviation; 6 of them.
    n = z.shape[0]
    mean_error = (z.mean(0) - mu[0]).abs() / (sigma / n ** 0.5)
    std_error = (z.std(0) - sigma).abs() / (sigma / (2 * n) ** 0.5)
    assert bool((mean_error < 6).all()), (
        f"the mean of {n} draws per dimension is {[round(v, 4) for v in z.mean(0).tolist()]}, expected mu = "
        f"{mu[0].tolist()}. " + DRAW_HINT)
    assert bool((std_error < 6).all()), (
        f"the standard deviation of {n} draws per dimension is {[round(v, 4) for v in z.std(0).tolist()]}, expected "
        f"exp(logvar / 2) = {[round(v, 4) for v in sigma.tolist()]}. " + DRAW_HINT)


@points(1)
@requires("test_reparameterize_replays_the_stated_draw")
def test_reparameterize_does_not_use_torch_distributions(student):
    """reparameterize is written with tensor operations, without torch.distributions"""
    mu, logvar = torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
    expect_implemented_without(student, "reparameterize", ["torch.distributions"],
                               attributes={"rsample", "sample"}, calling=((mu, logvar, None), {}))
