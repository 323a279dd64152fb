"""Hidden test: TwoLayerNet trained with adam_step on a 3-class spiral (Chapter 3, section 7).

The grader's own loop and settings: 600 training points of make_spirals(classes=3, turns=1, noise=0.015), a
TwoLayerNet(2, 64, 3, std=0.5) trained full batch for 400 steps of adam_step (lr 0.03, reg 1e-4). It is then
judged here, on 600 unseen points, from the parameters it learned: the test points and their labels never
leave the trusted side.

The data cannot be reproduced by the student's code: the spirals' seeds are drawn from fresh randomness, and
both sets are moved by the same random rotation (any angle), reflection (half of the time) and shift (up to 0.5),
all drawn here from fresh_generator(). The bound is explained in THRESHOLDS.md.
"""
import math

import torch

from dlvision.data import make_spirals
from dlvision.grading import fresh_generator, points

SETUP = {"n": 600, "noise": 0.015, "turns": 1.0, "hidden": 64, "std": 0.5, "lr": 0.03, "reg": 1e-4, "steps": 400,
         "init_seed": 0, "shift": 0.5}
THRESHOLD = 0.95
KEYS = ("W1", "b1", "W2", "b2")


# --- scenario: runs in the student's kernel ---------------------------------------------------------------------

def train_on_spiral(X, y, hidden, std, lr, reg, steps, init_seed):
    """The grader's loop: full-batch adam_step on the student's TwoLayerNet; returns the learned parameters."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: one thread is fastest, and steady on a busy machine
    try:
        net = TwoLayerNet(2, hidden, 3, std=std, generator=torch.Generator().manual_seed(init_seed))
        state, losses = {}, []
        for _ in range(steps):
            loss, grads = net.loss(X, y, reg=reg)
            adam_step(net.params, grads, state, lr=lr)
            losses.append(float(loss))
        return {"params": dict(net.params), "losses": losses}
    finally:
        torch.set_num_threads(threads)


# --- helpers on the trusted side -------------------------------------------------------------------------------

def spiral_task(g):
    """Training and test spirals from fresh seeds, moved by one random rotation, reflection and shift (from g)."""
    s = SETUP
    train_seed, test_seed = (int(v) for v in torch.randint(0, 2 ** 31 - 1, (2,), generator=g))
    X, y = make_spirals(s["n"], classes=3, turns=s["turns"], noise=s["noise"], seed=train_seed)
    X_test, y_test = make_spirals(s["n"], classes=3, turns=s["turns"], noise=s["noise"], seed=test_seed)
    theta = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64).item()
    rotation = torch.tensor([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]],
                            dtype=torch.float64)
    if torch.randint(0, 2, (), generator=g).item():
        rotation = rotation @ torch.diag(torch.tensor([1.0, -1.0], dtype=torch.float64))
    radius = s["shift"] * torch.rand((), generator=g, dtype=torch.float64).sqrt()
    angle = 2 * math.pi * torch.rand((), generator=g, dtype=torch.float64)
    shift = radius * torch.stack([torch.cos(angle), torch.sin(angle)])
    move = lambda points: (points.double() @ rotation.T + shift).float()  # noqa: E731
    return move(X), y, move(X_test), y_test


def predictions(params, X):
    """argmax of relu(X @ W1 + b1) @ W2 + b2, computed here in float64 from the learned parameters."""
    p = {k: params[k].double() for k in KEYS}
    return (torch.relu(X.double() @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]).argmax(dim=1)


# --- test ------------------------------------------------------------------------------------------------------

@points(3)
def test_spiral_test_accuracy_is_above_95_percent(student):
    """trained by the grader's loop with your TwoLayerNet and adam_step, the net is right on > 95% of a new spiral"""
    s = SETUP
    X, y, X_test, y_test = spiral_task(fresh_generator())
    got = student.run(train_on_spiral, X, y, s["hidden"], s["std"], s["lr"], s["reg"], s["steps"], s["init_seed"],
                      timeout=90)
    params, losses = got["params"], got["losses"]
    shapes = {"W1": (2, s["hidden"]), "b1": (s["hidden"],), "W2": (s["hidden"], 3), "b2": (3,)}
    found = ({k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__ for k, v in params.items()}
             if isinstance(params, dict) else type(params).__name__)
    assert found == shapes, (f"after training, TwoLayerNet(2, {s['hidden']}, 3).params should hold tensors of the "
                             f"shapes {shapes}, got {found}. See the tests of TwoLayerNet.")
    accuracy = (predictions(params, X_test) == y_test).double().mean().item()
    trend = ""
    if isinstance(losses, list) and len(losses) == s["steps"] and all(isinstance(v, float) for v in losses):
        trend = f" The training loss went from {losses[0]:.3g} to {losses[-1]:.3g}" + (
            ", upwards: a gradient or an update with the wrong sign?" if losses[-1] > losses[0] else ".")
    assert accuracy > THRESHOLD, (
        f"after {s['steps']} steps of adam_step (lr {s['lr']}), your TwoLayerNet(2, {s['hidden']}, 3) is right on "
        f"{accuracy:.1%} of 600 unseen spiral points; a correct network and optimizer reach 96% to 99% "
        f"(required: more than {THRESHOLD:.0%}).{trend} If the tests of your layers, TwoLayerNet or adam_step "
        "fail, fix those first.")
