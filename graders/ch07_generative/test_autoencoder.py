"""Hidden tests for Autoencoder (Chapter 7, section 1).

Structure: shapes, the [0, 1] range of decoded images, forward = decode(encode(x)), a decoder that depends on its
code only, the device contract, and the parameter count of the stated layers.

Quality: the grader trains the student's Autoencoder(8) with its own fixed loop (the notebook's: Adam, lr 1e-3,
600 steps of 64, mean squared error per pixel) on the public training digits moved by a random shift and rotation
drawn here from fresh randomness, then asks for the reconstructions of the public test digits moved the same way
by other fresh draws. The error is computed here, from the reconstructions, against the test digits the grader
holds. The bound and its measurements are in THRESHOLDS.md.
"""
import torch

from dlvision.data import jitter, load_digits_16
from dlvision.grading import expect_close, expect_keeps_device, fresh_generator, points, requires

SETUP = {"latent_dim": 8, "steps": 600, "batch": 64, "lr": 1e-3, "seed": 0, "max_shift": 1, "max_degrees": 10.0}
#: The mean squared error per pixel on the moved test digits must be below this (THRESHOLDS.md).
BOUND = 0.0152


def parameters_of(latent_dim):
    """The number of parameters of the stated layers."""
    return (256 * 128 + 128) + (128 * latent_dim + latent_dim) + (latent_dim * 128 + 128) + (128 * 256 + 256)


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def encode_decode(latent_dim, x1, x2, codes):
    """A fresh Autoencoder's encode(x1), forward(x1), encode(x2), then decode of the first codes and of `codes`."""
    import torch

    torch.manual_seed(0)
    model = Autoencoder(latent_dim)
    with torch.no_grad():
        z1 = model.encode(x1)
        forward1 = model(x1)
        z2 = model.encode(x2)
        decoded1 = model.decode(z1)
        decoded = model.decode(codes)
    return {"z1": z1, "forward1": forward1, "z2": z2, "decoded1": decoded1, "decoded": decoded}


def autoencoder_on(x, device="cpu"):
    """forward and decode(encode(x)) of an Autoencoder(8) made as the contract says and moved with .to(device)."""
    import torch

    torch.manual_seed(0)
    model = Autoencoder(8)
    if device != "cpu":
        model = model.to(device)
    return model(x), model.decode(model.encode(x))


def parameter_counts(latent_dims):
    """The number of parameters of Autoencoder(d) for each d."""
    return [sum(p.numel() for p in Autoencoder(d).parameters()) for d in latent_dims]


def train_and_reconstruct(train, test, latent_dim, steps, batch, lr, seed):
    """The grader's loop: Adam on the mean squared error per pixel of decode(encode(x)), random mini-batches; then
    the codes of the test digits and their decoding (with the training digits encoded in between)."""
    import torch
    import torch.nn.functional as F

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        torch.manual_seed(seed)
        model = Autoencoder(latent_dim)
        g = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        losses = []
        for _ in range(steps):
            x = train[torch.randint(0, len(train), (batch,), generator=g)]
            loss = F.mse_loss(model.decode(model.encode(x)), x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        with torch.no_grad():
            z = model.encode(test)
            model.encode(train[:100])
            recon = model.decode(z)
        return {"z_shape": list(z.shape), "recon": recon, "losses": losses}
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def shape_of(value):
    return tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__


def moved_digits(g):
    """The public training and test digits, each moved by its own random shift and rotation drawn from g."""
    X_train, _, X_test, _ = load_digits_16()
    s = SETUP
    train = jitter(X_train, max_shift=s["max_shift"], max_degrees=s["max_degrees"], generator=g)[:, None]
    test = jitter(X_test, max_shift=s["max_shift"], max_degrees=s["max_degrees"], generator=g)[:, None]
    return train.contiguous(), test.contiguous()


def check_images(images, n, what):
    assert isinstance(images, torch.Tensor) and images.shape == (n, 1, 16, 16), (
        f"{what} should be a tensor of shape ({n}, 1, 16, 16), got {shape_of(images)}.")
    assert images.dtype == torch.float32, f"{what} should be float32 (like the digits), got {images.dtype}."
    assert bool(torch.isfinite(images).all()) and images.min() >= 0 and images.max() <= 1, (
        f"{what} should lie in [0, 1]; its values range from {images.min().item():.4g} to {images.max().item():.4g}. "
        "End the decoder with a sigmoid.")


# --- tests -----------------------------------------------------------------------------------------------------

@points(1)
def test_autoencoder_encodes_to_latent_dim_and_decodes_to_images_in_0_1(student):
    """encode gives (N, latent_dim), decode gives (N, 1, 16, 16) in [0, 1] (even for huge codes), forward equals
    decode(encode(x)), decode depends on its code only, for a batch of one and more; on the device it is moved to"""
    g = torch.Generator().manual_seed(1)
    X_train, _, _, _ = load_digits_16()
    for latent_dim in (2, 8):
        for n in (1, 7):
            x1, x2 = X_train[:n, None].clone(), X_train[100:103, None].clone()
            codes = torch.randn(5, latent_dim, generator=g) * 100
            got = student.run(encode_decode, latent_dim, x1, x2, codes)
            assert isinstance(got["z1"], torch.Tensor) and got["z1"].shape == (n, latent_dim), (
                f"Autoencoder({latent_dim}).encode(x) for x of shape {tuple(x1.shape)} should return codes of shape "
                f"({n}, {latent_dim}), got {shape_of(got['z1'])}.")
            check_images(got["forward1"], n, f"Autoencoder({latent_dim})(x) for x of shape {tuple(x1.shape)}")
            check_images(got["decoded"], 5, f"Autoencoder({latent_dim}).decode(z) for codes z of size up to 300")
            expect_close(got["decoded1"], got["forward1"], name=f"Autoencoder({latent_dim}): decode(encode(x)) compared "
                         "with forward(x), with another batch encoded in between",
                         hint="forward(x) is decode(encode(x)), and decode(z) depends on z only: keep no state from one "
                              "call to the next.")
    expect_keeps_device(student, autoencoder_on, X_train[:4, None].clone(), hint=(
        "Create the layers on the CPU, as torch.nn layers are by default, and let the caller move the model with "
        ".to(device); make any new tensor in encode or decode on the device of the input."))


@points(1)
@requires("test_autoencoder_encodes_to_latent_dim_and_decodes_to_images_in_0_1")
def test_autoencoder_has_the_stated_layers(student):
    """Autoencoder(d) has the parameters of the stated layers: 256 -> 128 -> d -> 128 -> 256, with biases"""
    dims = [3, 8]
    found = student.run(parameter_counts, dims)
    expected = [parameters_of(d) for d in dims]
    assert found == expected, (
        f"Autoencoder(3) and Autoencoder(8) should have {expected[0]} and {expected[1]} parameters (Linear(256, 128), "
        f"Linear(128, d), Linear(d, 128), Linear(128, 256), each with a bias); they have {found}. Build exactly the "
        "layers of the docstring: the training test's bound is set for them.")


@points(3)
@requires("test_autoencoder_encodes_to_latent_dim_and_decodes_to_images_in_0_1")
def test_autoencoder_reconstructs_unseen_digits(student):
    """trained by the grader's loop on randomly moved digits, Autoencoder(8) reconstructs unseen moved digits with a
    mean squared error per pixel below 0.0152"""
    s = SETUP
    train, test = moved_digits(fresh_generator())
    got = student.run(train_and_reconstruct, train, test, s["latent_dim"], s["steps"], s["batch"], s["lr"], s["seed"],
                      timeout=120)
    assert got["z_shape"] == [len(test), s["latent_dim"]], (
        f"encode of {len(test)} test digits should give codes of shape ({len(test)}, {s['latent_dim']}), got "
        f"{got['z_shape']}.")
    check_images(got["recon"], len(test), f"the decoded codes of the {len(test)} test digits")
    error = ((got["recon"].double() - test.double()) ** 2).mean().item()
    losses = got["losses"]
    trend = ""
    if isinstance(losses, list) and len(losses) == s["steps"] and all(isinstance(v, float) for v in losses):
        trend = f" The training loss went from {losses[0]:.4f} to {sum(losses[-50:]) / 50:.4f}."
    assert error < BOUND, (
        f"after the grader's {s['steps']} steps of Adam (lr {s['lr']}, batches of {s['batch']}, mean squared error), "
        f"your Autoencoder({s['latent_dim']}) reconstructs unseen digits with a mean squared error per pixel of "
        f"{error:.4f}; a correct one reaches about 0.014 (required: below {BOUND}; predicting the mean digit scores "
        f"0.054, PCA with 8 components 0.018, the same network without ReLUs 0.016 to 0.017).{trend} Check the layers (ReLU between the linear layers, none on the "
        "code), and that every layer is registered (an attribute or a torch.nn.Sequential, not a plain list).")
