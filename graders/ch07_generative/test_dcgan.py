"""Hidden tests for DCGenerator and DCDiscriminator (Chapter 7, section 4).

Structure: output shapes and ranges (a batch of one), images that depend on their own noise only (no batch
statistics), raw logits, the device contract, and the parameter counts of the stated layers.

Quality: the grader turns the public training digits by a random symmetry of the square (a multiple of 90 degrees,
perhaps flipped), drawn here from fresh randomness, and draws the mini-batches and the noise. The scenario trains the
student's DCGenerator(16) and DCDiscriminator() with the grader's own GAN step (softplus losses written in the
scenario, so that this test does not depend on the student's losses or gan_train_step) in the notebook's loop (Adam,
lr 1e-3, betas (0.5, 0.999), 600 steps of 64) and returns the images for 500 noise vectors drawn here. Here, a
logistic-regression digit classifier trained on the same turned digits (average-pooled to 8x8) judges them: how
many classes appear, and how confidently; and the distances to the nearest training digit show that the samples
are digit-like (not too far) and are not copies (not too near). The bounds and their measurements are in
THRESHOLDS.md.
"""
import torch
import torch.nn.functional as F

from dlvision.data import load_digits_16
from dlvision.grading import (expect_close, expect_keeps_device, expect_on_device, fresh_generator, gpu, points,
                              requires)
from dlvision.grading.device import Inconclusive

SETUP = {"noise_dim": 16, "steps": 600, "batch": 64, "lr": 1e-3, "betas": (0.5, 0.999), "seed": 0, "samples": 500}
#: At least this many classes must each be given to at least 2% of the samples.
MIN_CLASSES = 8
#: The classifier's mean confidence on the samples must be at least this (THRESHOLDS.md).
MIN_CONFIDENCE = 0.45
#: The median distance (8x8 pooled pixels) of a sample to its nearest training digit must lie in this range.
NN_RANGE = (0.4, 2.0)


def generator_parameters(noise_dim):
    return (noise_dim * 512 + 512) + (32 * 16 * 9 + 16) + (16 * 9 + 1)


DISCRIMINATOR_PARAMETERS = (16 * 16 + 16) + (16 * 32 * 16 + 32) + (512 + 1)


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def forward_both(noise_dim, z, x):
    """DCGenerator(noise_dim)(z), the same generator on the first two noise vectors alone, DCDiscriminator()(x)."""
    import torch

    torch.manual_seed(0)
    G, D = DCGenerator(noise_dim), DCDiscriminator()
    with torch.no_grad():
        return {"images": G(z), "first_two": G(z[:2]), "logits": D(x)}


def parameter_counts(noise_dims):
    """The parameter counts of DCGenerator(n) for each n, and of DCDiscriminator()."""
    return ([sum(p.numel() for p in DCGenerator(n).parameters()) for n in noise_dims],
            sum(p.numel() for p in DCDiscriminator().parameters()))


def modules_on(z, device="cpu"):
    """DCGenerator(16)(z) and DCDiscriminator() on those images, made as the contract says and moved to `device`."""
    import torch

    torch.manual_seed(0)
    G, D = DCGenerator(16), DCDiscriminator()
    if device != "cpu":
        G, D = G.to(device), D.to(device)
    images = G(z)
    return images, D(images)


def modules_on_cuda(z):
    """DCGenerator(16) and DCDiscriminator() in float64: on the CPU, then moved to the device of z."""
    import torch

    torch.manual_seed(0)
    G, D = DCGenerator(16).double(), DCDiscriminator().double()
    with torch.no_grad():
        images = G(z.cpu())
        result = {"cpu": (images, D(images))}
        G, D = G.to(z.device), D.to(z.device)
        images = G(z)
        result["device"] = (images, D(images))
    return result


def outputs_with_weights(noise_dim, g_weights, d_weights, z, x):
    """A fresh DCGenerator(noise_dim) and DCDiscriminator() holding the grader's weights (each parameter takes the
    grader's tensor of its shape), then G(z) and D(x)."""
    import torch

    G, D = DCGenerator(noise_dim), DCDiscriminator()
    with torch.no_grad():
        for module, weights in ((G, g_weights), (D, d_weights)):
            unused = list(weights)
            for p in module.parameters():
                match = next((w for w in unused if tuple(w.shape) == tuple(p.shape)), None)
                if match is None:
                    return {"missing": [list(p.shape)]}
                unused.remove(match)
                p.copy_(match)
        return {"images": G(z), "logits": D(x)}


def train_dcgan(digits, batches, noise, z_eval, lr, betas, seed):
    """The grader's loop with its own GAN step: one discriminator step on real digits and G(z).detach(), then one
    generator step (non-saturating loss) on the same G(z); then the images G(z_eval)."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: one thread is fastest, and steady on a busy machine
    try:
        torch.manual_seed(seed)
        G, D = DCGenerator(z_eval.shape[1]), DCDiscriminator()
        opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
        opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
        for index, z in zip(batches, noise):
            fake = G(z)
            d_loss = F.softplus(-D(digits[index]).reshape(-1)).mean() + F.softplus(D(fake.detach()).reshape(-1)).mean()
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = F.softplus(-D(fake).reshape(-1)).mean()
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        with torch.no_grad():
            return G(z_eval)
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def shape_of(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def turned(images, quarter_turns, flip):
    """images (N, 1, 16, 16) turned by quarter_turns * 90 degrees, then mirrored left-right if flip."""
    images = torch.rot90(images, quarter_turns, dims=(2, 3))
    return torch.flip(images, dims=(3,)) if flip else images


def turned_digits(g):
    """The public training digits and the labels, turned by a random symmetry of the square drawn from g."""
    X_train, y_train, _, _ = load_digits_16()
    quarter_turns = int(torch.randint(0, 4, (), generator=g))
    flip = bool(torch.randint(0, 2, (), generator=g))
    return turned(X_train[:, None], quarter_turns, flip).contiguous(), y_train


def training_draws(g, n):
    s = SETUP
    batches = torch.randint(0, n, (s["steps"], s["batch"]), generator=g)
    noise = torch.randn(s["steps"], s["batch"], s["noise_dim"], generator=g)
    z_eval = torch.randn(s["samples"], s["noise_dim"], generator=g)
    return batches, noise, z_eval


def pooled(images):
    """(N, 1, 16, 16) -> (N, 64) float64: 2x2 averages, the scale at which the judge looks."""
    return F.avg_pool2d(images.double().reshape(-1, 1, 16, 16), 2).reshape(len(images), -1)


def digit_classifier(digits, labels):
    """Multinomial logistic regression (L2 1e-3) on the pooled digits, fitted with L-BFGS; returns a function giving
    class probabilities."""
    X = pooled(digits)
    W = torch.zeros(64, 10, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(10, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([W, b], max_iter=200, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(X @ W + b, labels) + 1e-3 * (W ** 2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    W, b = W.detach(), b.detach()
    return lambda images: torch.softmax(pooled(images) @ W + b, dim=1)


def judge(samples, digits, labels):
    """The measures of the quality test, computed here: (classes given to >= 2% of the samples, mean confidence,
    median distance to the nearest training digit, the class counts)."""
    probabilities = digit_classifier(digits, labels)(samples)
    confidence, predicted = probabilities.max(dim=1)
    counts = torch.bincount(predicted, minlength=10)
    classes = int((counts >= 0.02 * len(samples)).sum())
    nearest = torch.cdist(pooled(samples), pooled(digits)).min(dim=1).values
    return classes, confidence.mean().item(), nearest.median().item(), counts.tolist()


def draw_weights(g, noise_dim):
    """Weights for the stated layers, uniform with the spread of PyTorch's default initialisation."""
    def draw(shape, fan_in):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) / fan_in ** 0.5

    g_weights = [draw((512, noise_dim), noise_dim), draw((512,), noise_dim), draw((16, 32, 3, 3), 288),
                 draw((16,), 288), draw((1, 16, 3, 3), 144), draw((1,), 144)]
    d_weights = [draw((16, 1, 4, 4), 16), draw((16,), 16), draw((32, 16, 4, 4), 256), draw((32,), 256),
                 draw((1, 512), 512), draw((1,), 512)]
    return g_weights, d_weights


def reference_generator(z, w):
    """The stated generator in float64, from torch.nn.functional."""
    h = F.relu(F.linear(z, w[0], w[1])).reshape(-1, 32, 4, 4)
    h = F.relu(F.conv2d(F.interpolate(h, scale_factor=2, mode="nearest"), w[2], w[3], padding=1))
    return torch.sigmoid(F.conv2d(F.interpolate(h, scale_factor=2, mode="nearest"), w[4], w[5], padding=1))


def reference_discriminator(x, w):
    """The stated discriminator in float64, from torch.nn.functional."""
    h = F.leaky_relu(F.conv2d(x, w[0], w[1], stride=2, padding=1), 0.2)
    h = F.leaky_relu(F.conv2d(h, w[2], w[3], stride=2, padding=1), 0.2)
    return F.linear(h.flatten(1), w[4], w[5]).reshape(-1)


def check_images(images, n, what):
    assert isinstance(images, torch.Tensor) and images.shape == (n, 1, 16, 16), (
        f"{what} should be a tensor of shape ({n}, 1, 16, 16), got {shape_of(images)}.")
    assert bool(torch.isfinite(images).all()) and images.min() >= 0 and images.max() <= 1, (
        f"{what} should lie in [0, 1]; its values range from {images.min().item():.4g} to {images.max().item():.4g}. "
        "End the generator with a sigmoid.")


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_dcgan_maps_noise_to_images_and_images_to_logits(student):
    """DCGenerator(n) maps (N, n) noise to (N, 1, 16, 16) images in [0, 1] that depend on their own noise only;
    DCDiscriminator() maps them to (N,) raw logits; a batch of one works; on the device it is moved to"""
    g = torch.Generator().manual_seed(1)
    for noise_dim, n in ((16, 6), (5, 1)):
        z = torch.randn(n, noise_dim, generator=g) * 3
        x = torch.rand(n, 1, 16, 16, generator=g)
        got = student.run(forward_both, noise_dim, z, x)
        check_images(got["images"], n, f"DCGenerator({noise_dim}) of noise of shape ({n}, {noise_dim})")
        logits = got["logits"]
        assert isinstance(logits, torch.Tensor) and logits.shape == (n,), (
            f"DCDiscriminator() should map images of shape ({n}, 1, 16, 16) to logits of shape ({n},), got "
            f"{shape_of(logits)}. Reshape the (N, 1) output of the last layer to (N,).")
        assert bool(torch.isfinite(logits).all()), "DCDiscriminator's logits should be finite."
    z = torch.randn(32, 16, generator=g)
    x = torch.rand(32, 1, 16, 16, generator=g) * 40 - 20
    got = student.run(forward_both, 16, z, x)
    images, logits = got["images"], got["logits"]
    check_images(images, 32, "DCGenerator(16) of 32 noise vectors")
    assert images.std(dim=0).max() > 1e-4, (
        "DCGenerator(16) gives the same image for 32 different noise vectors: compute the image from the noise.")
    expect_close(got["first_two"], images[:2], rtol=1e-5, atol=1e-6,
                 name="DCGenerator(16)'s images of the first two noise vectors alone, compared with the same images in "
                      "a batch of 32",
                 hint="An image depends on its own noise vector only: no batch normalisation (or anything else that "
                      "mixes the samples of a batch).")
    assert logits.std() > 1e-4, "DCDiscriminator() gives the same logit for 32 different images."
    assert logits.min() < 0 or logits.max() > 1, (
        f"DCDiscriminator()'s outputs for 32 images of values up to 20 in size all lie in [0, 1] (from "
        f"{logits.min().item():.3g} to {logits.max().item():.3g}): return raw logits, without a sigmoid.")
    expect_keeps_device(student, modules_on, torch.randn(3, 16, generator=g), hint=(
        "Create the layers on the CPU, as torch.nn layers are by default, and let the caller move the module with "
        ".to(device); make any new tensor in forward on the device of the input."))


@points(1)
@requires("test_dcgan_maps_noise_to_images_and_images_to_logits")
def test_dcgan_has_the_stated_layers(student):
    """DCGenerator(n) and DCDiscriminator() have the parameters of the stated layers"""
    dims = [16, 7]
    found = student.run(parameter_counts, dims)
    expected = ([generator_parameters(n) for n in dims], DISCRIMINATOR_PARAMETERS)
    assert isinstance(found, (tuple, list)) and list(found[0]) == expected[0] and found[1] == expected[1], (
        f"DCGenerator(16) and DCGenerator(7) should have {expected[0]} parameters and DCDiscriminator() "
        f"{expected[1]}; found {found[0]} and {found[1]}. Build exactly the layers of the docstrings: Linear(n, 512), "
        "Conv2d(32, 16, 3, padding=1), Conv2d(16, 1, 3, padding=1) for the generator; Conv2d(1, 16, 4, 2, 1), "
        "Conv2d(16, 32, 4, 2, 1), Linear(512, 1) for the discriminator.")


@points(1)
@requires("test_dcgan_maps_noise_to_images_and_images_to_logits")
def test_dcgan_computes_the_stated_layers(student):
    """holding the grader's weights, DCGenerator(16) and DCDiscriminator() compute exactly the stated layers (ReLU,
    nearest-neighbour upsampling, 3x3 convolutions, sigmoid; strided 4x4 convolutions, LeakyReLU(0.2), Linear)"""
    g = torch.Generator().manual_seed(4)
    g_weights, d_weights = draw_weights(g, 16)
    z = torch.randn(6, 16, generator=g, dtype=torch.float64) * 2
    x = torch.rand(6, 1, 16, 16, generator=g, dtype=torch.float64)
    got = student.run(outputs_with_weights, 16, [w.float() for w in g_weights], [w.float() for w in d_weights],
                      z.float(), x.float())
    assert "missing" not in got, (
        f"a parameter of shape {got.get('missing')} is not one of the stated layers' parameters. Build exactly the "
        "layers of the docstrings.")
    hint = ("Build exactly the stated layers, in the stated order: for the generator Linear, ReLU, reshape to "
            "(N, 32, 4, 4), nearest-neighbour upsampling x2, 3x3 convolution (padding 1), ReLU, upsampling x2, 3x3 "
            "convolution, sigmoid; for the discriminator 4x4 convolutions with stride 2 and padding 1, each followed "
            "by LeakyReLU(0.2), then flatten and Linear(512, 1).")
    w64 = [w.float().double() for w in g_weights]
    expect_close(got["images"], reference_generator(z.float().double(), w64).float(), rtol=1e-4, atol=1e-5,
                 name="DCGenerator(16)'s images with the grader's weights", hint=hint)
    w64 = [w.float().double() for w in d_weights]
    expect_close(got["logits"], reference_discriminator(x.float().double(), w64).float(), rtol=1e-4, atol=1e-5,
                 name="DCDiscriminator()'s logits with the grader's weights", hint=hint)


@points(3)
@requires("test_dcgan_maps_noise_to_images_and_images_to_logits",
          "test_dcgan_computes_the_stated_layers")
def test_dcgan_draws_varied_new_digits(student):
    """trained by the grader's loop on turned digits, DCGenerator(16)'s 500 samples are judged by a digit classifier:
    at least 8 classes, mean confidence at least 0.45, and digit-like but not copies of training digits"""
    s = SETUP
    g = fresh_generator()
    digits, labels = turned_digits(g)
    batches, noise, z_eval = training_draws(g, len(digits))
    samples = student.run(train_dcgan, digits, batches, noise, z_eval, s["lr"], s["betas"], s["seed"], timeout=240)
    check_images(samples, s["samples"], f"the trained DCGenerator(16)'s images of {s['samples']} noise vectors")
    classes, confidence, nearest, counts = judge(samples, digits, labels)
    summary = (f"after the grader's {s['steps']} steps, a digit classifier sees {classes} classes among the 500 samples "
               f"(counts per class {counts}; required: {MIN_CLASSES} classes with at least 10 samples each), with "
               f"mean confidence {confidence:.2f} (required: {MIN_CONFIDENCE}; a correct answer: about 0.55); "
               f"the median distance to the nearest training digit is {nearest:.2f} (required: between {NN_RANGE[0]} "
               f"and {NN_RANGE[1]}; a correct answer: about 1.2; unseen real digits: 0.7).")
    assert nearest > NN_RANGE[0], (
        summary + " The samples are (almost) copies of training digits: a generator must produce new images from "
        "its noise.")
    assert classes >= MIN_CLASSES and confidence >= MIN_CONFIDENCE and nearest < NN_RANGE[1], (
        summary + " Check the layers of both networks (nearest-neighbour upsampling then a 3x3 convolution, ReLU, a "
        "final sigmoid in the generator; strided 4x4 convolutions with LeakyReLU(0.2) and no final sigmoid in the "
        "discriminator).")


@gpu
@points(1)
@requires("test_dcgan_maps_noise_to_images_and_images_to_logits")
def test_dcgan_runs_on_cuda(student, device):
    """moved to cuda, DCGenerator(16) and DCDiscriminator() compute there what they compute on the CPU (float64)"""
    z = torch.randn(5, 16, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    got = student.on(device).run(modules_on_cuda, z)
    if isinstance(got, Inconclusive):
        expect_on_device(got, device, torch.zeros(5, 1, 16, 16, dtype=torch.float64))
    on_cpu = [t if isinstance(t, torch.Tensor) else torch.zeros(shape, dtype=torch.float64)
              for t, shape in zip(got["cpu"], ((5, 1, 16, 16), (5,)))]
    hint = ("Make every layer in __init__ without a device (module.to('cuda') moves them all) and every tensor in "
            "forward on the device of the input.")
    expect_on_device(got["device"][0], device, on_cpu[0], rtol=1e-6, atol=1e-9, name="DCGenerator's images on cuda",
                     hint=hint)
    expect_on_device(got["device"][1], device, on_cpu[1], rtol=1e-6, atol=1e-9,
                     name="DCDiscriminator's logits on cuda", hint=hint)
