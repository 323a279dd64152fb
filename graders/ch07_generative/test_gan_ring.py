"""Hidden tests for Generator and Discriminator, and a GAN trained on a ring of eight Gaussians (Chapter 7, 3.3).

Structure: output shapes (several sizes, a batch of one), outputs that depend on the input, raw logits, the device
contract, and the parameter counts of the stated layers.

Quality: the grader draws here, from fresh randomness, a ring of 8 Gaussians (radius 2, std 0.1) turned by a random
angle, every training batch of real points and of noise, and the noise of the 1000 evaluation samples. The scenario
trains the student's Generator(2, 2) and Discriminator(2) with the student's gan_train_step (and so the student's
losses) in the notebook's loop (Adam, lr 1e-3, betas (0.5, 0.999), 1500 steps of 256) and returns the samples. The
modes covered and the fraction of high-quality samples (PacGAN's measures) are computed here. The bounds and their
measurements are in THRESHOLDS.md.
"""
import math

import torch

from dlvision.data import make_ring, ring_modes
from dlvision.grading import (expect_close, expect_keeps_device, expect_on_device, fresh_generator, gpu, points,
                              requires)
from dlvision.grading.device import Inconclusive

SETUP = {"modes": 8, "radius": 2.0, "std": 0.1, "steps": 1500, "batch": 256, "lr": 1e-3, "betas": (0.5, 0.999),
         "seed": 0, "samples": 1000}
#: At least this many of the 8 modes must be covered (>= 2% of the samples are high-quality samples of the mode).
MIN_MODES = 6
#: At least this fraction of the samples must lie within 3 standard deviations of a mode (THRESHOLDS.md).
MIN_QUALITY = 0.45
HIDDEN = 128


def generator_parameters(noise_dim, out_dim):
    return (noise_dim * HIDDEN + HIDDEN) + (HIDDEN * HIDDEN + HIDDEN) + (HIDDEN * out_dim + out_dim)


def discriminator_parameters(in_dim):
    return (in_dim * HIDDEN + HIDDEN) + (HIDDEN * HIDDEN + HIDDEN) + (HIDDEN + 1)


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_both(noise_dim, out_dim, z, x):
    """Generator(noise_dim, out_dim)(z) and Discriminator(out_dim)(x), fresh modules made after manual_seed(0)."""
    import torch

    torch.manual_seed(0)
    G, D = Generator(noise_dim, out_dim), Discriminator(out_dim)
    with torch.no_grad():
        return {"samples": G(z), "logits": D(x)}


def parameter_counts(shapes):
    """The parameter counts of Generator(n, o) and Discriminator(o) for each (n, o)."""
    return [[sum(p.numel() for p in Generator(n, o).parameters()), sum(p.numel() for p in Discriminator(o).parameters())]
            for n, o in shapes]


def modules_on(z, device="cpu"):
    """Generator(3, 2)(z) and Discriminator(2) on its output, made as the contract says and moved to `device`."""
    import torch

    torch.manual_seed(0)
    G, D = Generator(3, 2), Discriminator(2)
    if device != "cpu":
        G, D = G.to(device), D.to(device)
    samples = G(z)
    return samples, D(samples)


def modules_on_cuda(z):
    """Generator(3, 2) and Discriminator(2) in float64: on the CPU, then moved to the device of z."""
    import torch

    torch.manual_seed(0)
    G, D = Generator(3, 2).double(), Discriminator(2).double()
    with torch.no_grad():
        samples = G(z.cpu())
        result = {"cpu": (samples, D(samples))}
        G, D = G.to(z.device), D.to(z.device)
        samples = G(z)
        result["device"] = (samples, D(samples))
    return result


def outputs_with_weights(noise_dim, out_dim, g_weights, d_weights, z, x):
    """A fresh Generator(noise_dim, out_dim) and Discriminator(out_dim) holding the grader's weights (each parameter
    takes the grader's tensor of its shape; the two hidden biases of each network are equal), then G(z) and D(x)."""
    import torch

    G, D = Generator(noise_dim, out_dim).double(), Discriminator(out_dim).double()
    with torch.no_grad():
        for module, weights in ((G, g_weights), (D, d_weights)):
            unused = list(weights)
            for p in module.parameters():
                match = next((w for w in unused if tuple(w.shape) == tuple(p.shape)), None)
                if match is None:
                    return {"missing": [list(p.shape)]}
                unused.remove(match)
                p.copy_(match)
        return {"samples": G(z), "logits": D(x)}


def train_ring(real, noise, z_eval, lr, betas, seed):
    """The grader's loop: the student's Generator(2, 2), Discriminator(2) and gan_train_step, Adam for both, one call
    per batch of real points and noise; then the samples G(z_eval)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is fastest, and steady on a busy machine
    try:
        torch.manual_seed(seed)
        G, D = Generator(2, 2), Discriminator(2)
        opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
        for step in range(len(real)):
            gan_train_step(G, D, opt_g, opt_d, real[step], noise[step])
        with torch.no_grad():
            return G(z_eval)
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def shape_of(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def rotation(angle):
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def ring_data(g):
    """The ring turned by a random angle: its modes, the real batches, the noise batches and the evaluation noise."""
    s = SETUP
    turn = rotation(2 * math.pi * torch.rand((), generator=g, dtype=torch.float64).item())
    real, _ = make_ring(s["steps"] * s["batch"], modes=s["modes"], radius=s["radius"], std=s["std"], generator=g)
    real = (real.double() @ turn.T).float().reshape(s["steps"], s["batch"], 2)
    noise = torch.randn(s["steps"], s["batch"], 2, generator=g)
    z_eval = torch.randn(s["samples"], 2, generator=g)
    return ring_modes(s["modes"], s["radius"]) @ turn.T, real, noise, z_eval


def draw_weights(g, noise_dim, out_dim):
    """Weights for the stated layers (uniform, the spread of PyTorch's default initialisation); the two hidden biases
    of each network are equal, so that it does not matter which of the two same-shaped parameters takes which."""
    def draw(shape, fan_in):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) / fan_in ** 0.5

    bias = draw((HIDDEN,), 2)
    g_weights = [draw((HIDDEN, noise_dim), noise_dim), bias, draw((HIDDEN, HIDDEN), HIDDEN), bias.clone(),
                 draw((out_dim, HIDDEN), HIDDEN), draw((out_dim,), HIDDEN)]
    bias = draw((HIDDEN,), 2)
    d_weights = [draw((HIDDEN, out_dim), out_dim), bias, draw((HIDDEN, HIDDEN), HIDDEN), bias.clone(),
                 draw((1, HIDDEN), HIDDEN), draw((1,), HIDDEN)]
    return g_weights, d_weights


def reference_generator(z, w):
    h = torch.relu(z @ w[0].T + w[1])
    h = torch.relu(h @ w[2].T + w[3])
    return h @ w[4].T + w[5]


def reference_discriminator(x, w):
    leaky = torch.nn.functional.leaky_relu
    h = leaky(x @ w[0].T + w[1], 0.2)
    h = leaky(h @ w[2].T + w[3], 0.2)
    return (h @ w[4].T + w[5]).reshape(-1)


def ring_quality(samples, modes, std):
    """(fraction of samples within 3 std of their closest mode, high-quality samples per mode)."""
    distance, closest = torch.cdist(samples.double(), modes).min(dim=1)
    good = distance < 3 * std
    return good.double().mean().item(), torch.bincount(closest[good], minlength=len(modes))


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_generator_and_discriminator_map_to_the_stated_shapes(student):
    """Generator(n, o) maps (N, n) noise to (N, o) samples that depend on the noise; Discriminator(o) maps (N, o) to
    (N,) raw logits (not probabilities) that depend on the input; a batch of one works; on the device moved to"""
    g = torch.Generator().manual_seed(1)
    for noise_dim, out_dim, n in ((3, 2, 6), (5, 4, 1), (3, 2, 1)):
        z = torch.randn(n, noise_dim, generator=g)
        x = torch.randn(n, out_dim, generator=g) * 50
        got = student.run(forward_both, noise_dim, out_dim, z, x)
        samples, logits = got["samples"], got["logits"]
        assert isinstance(samples, torch.Tensor) and samples.shape == (n, out_dim), (
            f"Generator({noise_dim}, {out_dim}) should map noise of shape ({n}, {noise_dim}) to samples of shape "
            f"({n}, {out_dim}), got {shape_of(samples)}.")
        assert isinstance(logits, torch.Tensor) and logits.shape == (n,), (
            f"Discriminator({out_dim}) should map a batch of shape ({n}, {out_dim}) to logits of shape ({n},), got "
            f"{shape_of(logits)}. Reshape the (N, 1) output of the last layer to (N,).")
        assert bool(torch.isfinite(samples).all()) and bool(torch.isfinite(logits).all()), "outputs should be finite."
    z = torch.randn(64, 3, generator=g)
    x = torch.randn(64, 2, generator=g) * 50
    got = student.run(forward_both, 3, 2, z, x)
    samples, logits = got["samples"], got["logits"]
    assert samples.std(dim=0).min() > 1e-4, (
        "Generator(3, 2) gives (almost) the same sample for 64 different noise vectors: the sample must be computed "
        "from the noise by the stated layers.")
    assert logits.std() > 1e-4, "Discriminator(2) gives the same logit for 64 different points."
    assert logits.min() < 0 or logits.max() > 1, (
        f"Discriminator(2)'s outputs for points as far as 150 from the origin all lie in [0, 1] (from "
        f"{logits.min().item():.3g} to {logits.max().item():.3g}): return raw logits, without a sigmoid; the losses "
        "take logits.")
    expect_keeps_device(student, modules_on, torch.randn(5, 3, generator=g), hint=(
        "Create the layers on the CPU, as torch.nn layers are by default, and let the caller move the module with "
        ".to(device); make any new tensor in forward on the device of the input."))


@points(1)
@requires("test_generator_and_discriminator_map_to_the_stated_shapes")
def test_generator_and_discriminator_have_the_stated_layers(student):
    """Generator(n, o): n -> 128 -> 128 -> o, and Discriminator(o): o -> 128 -> 128 -> 1, each layer with a bias"""
    shapes = [(2, 2), (5, 3)]
    found = student.run(parameter_counts, shapes)
    expected = [[generator_parameters(n, o), discriminator_parameters(o)] for n, o in shapes]
    assert found == expected, (
        f"[Generator, Discriminator] parameter counts for (noise_dim, out_dim) in {shapes} should be {expected}, got "
        f"{found}. Build exactly the layers of the docstrings (two hidden layers of 128 units, with biases): the "
        "training test's recipe is set for them.")


@points(1)
@requires("test_generator_and_discriminator_map_to_the_stated_shapes")
def test_generator_and_discriminator_compute_the_stated_layers(student):
    """holding the grader's weights (float64), Generator(3, 2) and Discriminator(2) compute exactly the stated layers:
    ReLU in the generator, LeakyReLU(0.2) in the discriminator, nothing after the last layers"""
    g = torch.Generator().manual_seed(4)
    g_weights, d_weights = draw_weights(g, 3, 2)
    z = torch.randn(9, 3, generator=g, dtype=torch.float64) * 2
    x = torch.randn(9, 2, generator=g, dtype=torch.float64) * 2
    got = student.run(outputs_with_weights, 3, 2, g_weights, d_weights, z, x)
    assert "missing" not in got, (
        f"a parameter of shape {got.get('missing')} is not one of the stated layers' parameters. Build exactly the "
        "layers of the docstrings.")
    hint = ("Build exactly the stated layers: Linear, ReLU, Linear, ReLU, Linear for the generator; Linear, "
            "LeakyReLU(0.2), Linear, LeakyReLU(0.2), Linear for the discriminator; no activation after the last layer.")
    expect_close(got["samples"], reference_generator(z, g_weights), rtol=1e-6, atol=1e-9,
                 name="Generator(3, 2)'s samples with the grader's weights", hint=hint)
    expect_close(got["logits"], reference_discriminator(x, d_weights), rtol=1e-6, atol=1e-9,
                 name="Discriminator(2)'s logits with the grader's weights", hint=hint)


@points(3)
@requires("test_generator_and_discriminator_map_to_the_stated_shapes",
          "test_generator_and_discriminator_compute_the_stated_layers")
def test_gan_covers_the_modes_of_a_ring_with_high_quality_samples(student):
    """trained by the grader's loop with the student's gan_train_step on a turned ring of 8 Gaussians, the generator
    covers at least 6 of the 8 modes and at least 45% of its samples lie within 3 std of a mode"""
    s = SETUP
    modes, real, noise, z_eval = ring_data(fresh_generator())
    samples = student.run(train_ring, real, noise, z_eval, s["lr"], s["betas"], s["seed"], timeout=240)
    assert isinstance(samples, torch.Tensor) and samples.shape == (s["samples"], 2), (
        f"the trained Generator(2, 2) should map {s['samples']} noise vectors to samples of shape ({s['samples']}, 2), "
        f"got {shape_of(samples)}.")
    assert bool(torch.isfinite(samples).all()), (
        "the trained generator's samples contain nan or inf: training diverged. Check the losses (softplus of the "
        "logits) and gan_train_step.")
    quality, per_mode = ring_quality(samples, modes, s["std"])
    covered = int((per_mode >= 0.02 * s["samples"]).sum())
    radius = samples.double().norm(dim=1)
    summary = (f"after the grader's {s['steps']} steps, {quality:.0%} of 1000 samples lie within 3 std of a mode "
               f"(required: {MIN_QUALITY:.0%}; a correct answer: usually 75% to 90%), and {covered} of the 8 modes are "
               f"covered (required: {MIN_MODES}; a correct answer: 7 or 8); the samples' distance to the centre has median "
               f"{radius.median().item():.2f} (the ring's radius: 2).")
    assert covered >= MIN_MODES and quality >= MIN_QUALITY, (
        summary + " Check the layers (ReLU in the generator, LeakyReLU(0.2) in the discriminator, no activation "
        "after either's last layer), and that gan_train_step and the losses pass their own tests.")


@gpu
@points(1)
@requires("test_generator_and_discriminator_map_to_the_stated_shapes")
def test_generator_and_discriminator_run_on_cuda(student, device):
    """moved to cuda, Generator(3, 2) and Discriminator(2) compute there what they compute on the CPU (float64)"""
    z = torch.randn(7, 3, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    got = student.on(device).run(modules_on_cuda, z)
    if isinstance(got, Inconclusive):
        expect_on_device(got, device, torch.zeros(7, 2, dtype=torch.float64))
    on_cpu = [t if isinstance(t, torch.Tensor) else torch.zeros(shape, dtype=torch.float64)
              for t, shape in zip(got["cpu"], ((7, 2), (7,)))]
    hint = ("Make every layer in __init__ without a device (module.to('cuda') moves them all) and every tensor in "
            "forward on the device of the input.")
    expect_on_device(got["device"][0], device, on_cpu[0], rtol=1e-6, atol=1e-9, name="Generator's samples on cuda",
                     hint=hint)
    expect_on_device(got["device"][1], device, on_cpu[1], rtol=1e-6, atol=1e-9, name="Discriminator's logits on cuda",
                     hint=hint)
