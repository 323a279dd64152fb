"""Hidden tests for gan_train_step (Chapter 7, section 3.2).

The grader builds a small generator and discriminator (torch.nn.Sequential, float64) with weights it draws, and
SGD optimisers with momentum (so that gradients left over from a previous step would show); the scenario runs the
student's gan_train_step on them and returns the losses and every parameter after each step. Here the same steps
are replayed in float64 exactly as the docstring states them (losses written here with softplus), and compared.
"""
import torch
from torch.nn.functional import softplus

from dlvision.grading import expect_close, points, requires

NOISE, DIM, HIDDEN = 3, 2, 5
LR_G, LR_D, MOMENTUM = 0.05, 0.1, 0.5

ORDER_HINT = ("Follow the stated order: fake = G(z); d_loss = discriminator_loss(D(real), D(fake.detach())); "
              "opt_d.zero_grad(), backward, opt_d.step(); then g_loss = generator_loss(D(fake)) with the same fakes "
              "and the updated D; opt_g.zero_grad(), backward, opt_g.step(). Each optimiser's gradients are cleared "
              "right before its own backward pass. If the tests of discriminator_loss and generator_loss fail, fix "
              "those first.")


# --- scenarios: run in the student's kernel ---------------------------------------------------------------------

def run_steps(g_weights, d_weights, batches, lr_g, lr_d, momentum):
    """gan_train_step on a float64 G (Linear, Tanh, Linear) and D (Linear, Tanh, Linear, flatten) holding the grader's
    weights, one call per (real, z) batch; returns the losses and the parameters after each call."""
    import torch

    nn = torch.nn
    G = nn.Sequential(nn.Linear(g_weights[0].shape[1], g_weights[0].shape[0]), nn.Tanh(),
                      nn.Linear(g_weights[2].shape[1], g_weights[2].shape[0])).double()
    D = nn.Sequential(nn.Linear(d_weights[0].shape[1], d_weights[0].shape[0]), nn.Tanh(),
                      nn.Linear(d_weights[2].shape[1], 1), nn.Flatten(0)).double()
    with torch.no_grad():
        for p, w in zip(list(G.parameters()) + list(D.parameters()), list(g_weights) + list(d_weights)):
            p.copy_(w)
    opt_g = torch.optim.SGD(G.parameters(), lr=lr_g, momentum=momentum)
    opt_d = torch.optim.SGD(D.parameters(), lr=lr_d, momentum=momentum)
    out = []
    for real, z in batches:
        losses = gan_train_step(G, D, opt_g, opt_d, real, z)
        out.append({"losses": losses, "G": [p.detach().clone() for p in G.parameters()],
                    "D": [p.detach().clone() for p in D.parameters()]})
    return out


# --- helpers on the trusted side -------------------------------------------------------------------------------

def draw_weights(g):
    shapes_g = [(HIDDEN, NOISE), (HIDDEN,), (DIM, HIDDEN), (DIM,)]
    shapes_d = [(HIDDEN, DIM), (HIDDEN,), (1, HIDDEN), (1,)]
    return ([torch.randn(s, generator=g, dtype=torch.float64) for s in shapes_g],
            [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes_d])


def draw_batches(g, count):
    return [(torch.randn(7, DIM, generator=g, dtype=torch.float64) + 1.5,
             torch.randn(5, NOISE, generator=g, dtype=torch.float64)) for _ in range(count)]


def replay(g_weights, d_weights, batches):
    """The stated procedure, step by step, with torch.optim.SGD here; returns what run_steps returns."""
    nn = torch.nn
    G = nn.Sequential(nn.Linear(NOISE, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, DIM)).double()
    D = nn.Sequential(nn.Linear(DIM, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, 1), nn.Flatten(0)).double()
    with torch.no_grad():
        for p, w in zip(list(G.parameters()) + list(D.parameters()), list(g_weights) + list(d_weights)):
            p.copy_(w)
    opt_g = torch.optim.SGD(G.parameters(), lr=LR_G, momentum=MOMENTUM)
    opt_d = torch.optim.SGD(D.parameters(), lr=LR_D, momentum=MOMENTUM)
    out = []
    for real, z in batches:
        fake = G(z)
        d_loss = softplus(-D(real)).mean() + softplus(D(fake.detach())).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = softplus(-D(fake)).mean()
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        out.append({"losses": (d_loss.item(), g_loss.item()), "G": [p.detach().clone() for p in G.parameters()],
                    "D": [p.detach().clone() for p in D.parameters()]})
    return out


def compare(got, expected, steps):
    names = {"G": ("G's first weight", "G's first bias", "G's second weight", "G's second bias"),
             "D": ("D's first weight", "D's first bias", "D's second weight", "D's second bias")}
    assert isinstance(got, list) and len(got) == steps, f"expected the results of {steps} steps, got {type(got).__name__}."
    for k, (mine, theirs) in enumerate(zip(got, expected)):
        after = f"after call {k + 1} of gan_train_step"
        losses = mine["losses"]
        assert isinstance(losses, (tuple, list)) and len(losses) == 2, (
            f"gan_train_step should return a pair (d_loss, g_loss), got {type(losses).__name__}.")
        for which, got_loss, want in zip(("d_loss", "g_loss"), losses, theirs["losses"]):
            value = got_loss.item() if isinstance(got_loss, torch.Tensor) and got_loss.numel() == 1 else got_loss
            assert isinstance(value, (int, float)) and abs(value - want) <= 1e-9 * max(1.0, abs(want)), (
                f"{which} returned by call {k + 1} is {value!r}, expected {want:.10g} (the loss computed before its own "
                "update: d_loss with the D and G of before the call, g_loss with the updated D). " + ORDER_HINT)
        for net in ("D", "G"):
            for name, p, q in zip(names[net], mine[net], theirs[net]):
                expect_close(p, q, name=f"{name} {after}", hint=ORDER_HINT)


# --- tests -----------------------------------------------------------------------------------------------------

@points(2)
def test_one_step_updates_d_then_g_on_the_same_noise(student):
    """one call: a discriminator step on real and G(z).detach(), then a generator step on the same G(z) scored by
    the updated D; both losses and all parameters match the stated procedure"""
    g = torch.Generator().manual_seed(1)
    g_weights, d_weights = draw_weights(g)
    batches = draw_batches(g, 1)
    got = student.run(run_steps, g_weights, d_weights, batches, LR_G, LR_D, MOMENTUM)
    compare(got, replay(g_weights, d_weights, batches), 1)


@points(1)
def test_three_steps_clear_each_optimisers_gradients(student):
    """three calls in a row (SGD with momentum) match the stated procedure: no gradient is carried from one call or
    one network's step into the next"""
    g = torch.Generator().manual_seed(2)
    g_weights, d_weights = draw_weights(g)
    batches = draw_batches(g, 3)
    got = student.run(run_steps, g_weights, d_weights, batches, LR_G, LR_D, MOMENTUM)
    compare(got, replay(g_weights, d_weights, batches), 3)


@points(1)
@requires("test_one_step_updates_d_then_g_on_the_same_noise")
def test_losses_are_returned_as_python_floats(student):
    """gan_train_step returns (d_loss, g_loss) as Python floats, not tensors that keep the graph alive"""
    g = torch.Generator().manual_seed(3)
    g_weights, d_weights = draw_weights(g)
    got = student.run(run_steps, g_weights, d_weights, draw_batches(g, 1), LR_G, LR_D, MOMENTUM)
    losses = got[0]["losses"]
    kinds = [type(v).__name__ for v in losses]
    assert all(type(v) is float for v in losses), (
        f"gan_train_step returned losses of types {kinds}; return Python floats (d_loss.item(), g_loss.item()): a "
        "tensor that requires grad keeps the whole graph of the step in memory, and a list of them grows every step.")
